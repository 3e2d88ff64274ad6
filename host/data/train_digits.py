"""Trains the shipped digits networks and exports them to ONNX (host/data/):

- digits-score.onnx (+ digits-score.json, its conventions): a noise-conditional score network
  s(x, σ) for the built-in `digits` data (1,797 images of 8×8 pixels, values ÷ 16 in [0, 1]),
  trained by denoising score matching over σ log-uniform in [0.01, 4.815] — σ_N = 0.01 and
  Technique 1's σ_1 for digits, the range of anneal's default schedule.
- digits-features.onnx: the 64 features (last hidden layer) of a small digit classifier, the
  feature space of anneal's Fréchet distance on digits (`fd_features` in metrics.json).

    python3 host/data/train_digits.py      # PyTorch ≥ 2.4 and `onnx`; CPU; ~5 minutes, 2 threads

Fixed seeds, CPU, float32; the files differ between PyTorch versions only by rounding.

Score network: an MLP on the 64 pixels — 3 hidden layers of 384 SiLU units; an embedding of
ln σ (16 fixed Fourier frequencies, sin and cos) is projected and added to every hidden layer;
the last layer's output h is divided by σ, so the network returns the score s = h/σ (NCSNv2's
Technique 3). The loss is denoising score matching weighted by σ² (NCSN's λ(σ) = σ²):
‖σ s(x + σz, σ) + z‖². Adam (lr 1e-3, cosine decay to 0) for 16 000 steps of batch 256, and
an exponential moving average of the weights (rate 0.999, NCSNv2's Technique 5) is exported.
"""

import json
import math
import pathlib
import time

import numpy as np
import torch
import torch.nn as nn

HERE = pathlib.Path(__file__).resolve().parent
SIGMA_MIN, SIGMA_MAX = 0.01, 4.8149344491903525
WIDTH, FREQS, STEPS, BATCH = 384, 16, 16_000, 256


def load():
    raw = np.fromfile(HERE / "digits.u8", dtype=np.uint8).reshape(-1, 65)
    return raw[:, :64].astype(np.float32) / 16.0, raw[:, 64].astype(np.int64)


class ScoreNet(nn.Module):
    def __init__(self, d=64, width=WIDTH, freqs=FREQS):
        super().__init__()
        self.register_buffer("freqs", torch.linspace(0.25, 8.0, freqs))
        self.inp = nn.Linear(d, width)
        self.hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(2)])
        self.emb = nn.ModuleList([nn.Linear(2 * freqs, width) for _ in range(3)])
        self.out = nn.Linear(width, d)
        self.act = nn.SiLU()

    def forward(self, x, sigma):
        t = torch.log(sigma).reshape(-1, 1) * self.freqs
        e = torch.cat([torch.sin(t), torch.cos(t)], dim=1)
        h = self.act(self.inp(x) + self.emb[0](e))
        for layer, emb in zip(self.hidden, self.emb[1:]):
            h = self.act(layer(h) + emb(e))
        return self.out(h) / sigma.reshape(-1, 1)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 128), nn.SiLU(), nn.Linear(128, 64), nn.SiLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.features(x))


def export(model, args, names, path, outputs):
    axes = {n: {0: "batch"} for n in names + outputs}
    torch.onnx.export(model, args, str(path), input_names=names, output_names=outputs,
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    print(f"wrote {path.name}: {path.stat().st_size} bytes")


def train_score(x):
    torch.manual_seed(0)
    net = ScoreNet()
    ema = ScoreNet()
    ema.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    data = torch.from_numpy(x)
    gen = torch.Generator().manual_seed(1)
    lo, hi = math.log(SIGMA_MIN), math.log(SIGMA_MAX)
    start = time.time()
    for step in range(STEPS):
        idx = torch.randint(0, data.shape[0], (BATCH,), generator=gen)
        x0 = data[idx]
        sigma = torch.exp(lo + (hi - lo) * torch.rand(BATCH, generator=gen))
        z = torch.randn(x0.shape, generator=gen)
        s = net(x0 + sigma[:, None] * z, sigma)
        loss = ((sigma[:, None] * s + z) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(0.999).add_(p, alpha=0.001)
        if step % 2000 == 0 or step == STEPS - 1:
            print(f"score step {step}: loss {loss.item():.3f} ({time.time() - start:.0f} s)")
    return ema.eval()


def train_classifier(x, y):
    torch.manual_seed(2)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    data, labels = torch.from_numpy(x), torch.from_numpy(y)
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(3))
    train, test = perm[:1500], perm[1500:]
    gen = torch.Generator().manual_seed(4)
    for step in range(3000):
        idx = train[torch.randint(0, len(train), (128,), generator=gen)]
        loss = nn.functional.cross_entropy(net(data[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (net(data[test]).argmax(1) == labels[test]).float().mean().item()
    print(f"classifier: held-out accuracy {acc:.3f} on {len(test)} images")
    return net.eval(), acc


def main():
    torch.set_num_threads(2)
    x, y = load()
    clf, acc = train_classifier(x, y)
    export(clf.features, (torch.from_numpy(x[:4]),), ["x"], HERE / "digits-features.onnx", ["features"])
    net = train_score(x)
    export(net, (torch.from_numpy(x[:4]), torch.full((4,), 0.5)), ["x", "sigma"],
           HERE / "digits-score.onnx", ["score"])
    sidecar = {
        "input": "sigma",
        "output": "score",
        "shape": [64],
        "data": "digits",
        "range": [0.0, 1.0],
        "trained_sigma": [SIGMA_MIN, SIGMA_MAX],
        "description": "digits score MLP (host/data/train_digits.py); "
                       f"classifier held-out accuracy {acc:.3f}",
    }
    (HERE / "digits-score.json").write_text(json.dumps(sidecar, indent=1) + "\n")


if __name__ == "__main__":
    main()
