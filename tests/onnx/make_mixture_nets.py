"""Known-answer ONNX score networks: the *exact* score of an isotropic Gaussian mixture, written
as a PyTorch module and exported with torch.onnx.export, in every convention anneal reads.

    s(x, σ) = Σ_k r_k(x) (μ_k − x) / (τ² + σ²),
    r(x) = softmax_k(ln w_k − ‖x − μ_k‖² / (2(τ² + σ²)))

Sampling through these files must match sampling with anneal's closed-form score (the tests in
host/tests/network.rs). Run from the repository root (PyTorch ≥ 2.4 and the `onnx` package;
CPU; a few seconds):

    python3 tests/onnx/make_mixture_nets.py

Files (each NAME.onnx with its sidecar NAME.json):
- toy2d-{score,sigma-score,eps,denoiser}: toy2d (μ = ±(5, 5), w = 0.2/0.8, τ = 1), σ input.
- toy2d-logsigma: ln σ input; toy2d-level: level index into 100 geometric σ's from 10 to 0.01.
- digits50: the first 50 digits (values/16), τ = 0.05, σ input; digits50.npy: those 50 points.
- onepoint: a single point at the origin of D = 200, τ = 0 (s = −x/σ²), for the consistency trace.
- bad-*: models a user could get wrong (tests of the error messages).
"""

import json
import math
import pathlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent
torch.manual_seed(0)


class MixtureScore(torch.nn.Module):
    def __init__(self, means, weights, tau, noise="sigma", output="score", sigmas=None, shape=None):
        super().__init__()
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32))
        self.register_buffer("logw", torch.tensor(np.log(weights), dtype=torch.float32))
        self.register_buffer("norms", (self.means**2).sum(1))
        self.tau2 = float(tau) ** 2
        self.noise, self.output = noise, output
        if sigmas is not None:
            self.register_buffer("sigmas", torch.tensor(sigmas, dtype=torch.float32))
        self.shape = shape

    def sigma_of(self, t):
        if self.noise == "log-sigma":
            return torch.exp(t)
        if self.noise == "level":
            return self.sigmas[t]
        return t

    def forward(self, x, t):
        b = x.shape[0]
        y = x.reshape(b, -1)
        sigma = self.sigma_of(t).reshape(b, 1)
        v = self.tau2 + sigma * sigma
        # ‖y − μ‖² = ‖y‖² − 2 y·μ + ‖μ‖²; the ‖y‖² term cancels in the softmax.
        logits = self.logw - (self.norms - 2.0 * y @ self.means.T) / (2.0 * v)
        r = torch.softmax(logits, dim=1)
        s = (r @ self.means - y) / v
        if self.output == "sigma-score":
            out = sigma * s
        elif self.output == "eps":
            out = -sigma * s
        elif self.output == "denoiser":
            out = y + sigma * sigma * s
        else:
            out = s
        return out.reshape(x.shape)


class WrongShape(MixtureScore):
    """Returns one value per sample: an output of the wrong shape."""

    def forward(self, x, t):
        return super().forward(x, t).sum(dim=1, keepdim=True)


class NanBelow(MixtureScore):
    """The exact score, but NaN for σ < 0.05."""

    def forward(self, x, t):
        s = super().forward(x, t)
        nan = torch.where(t < 0.05, torch.full_like(t, float("nan")), torch.zeros_like(t))
        return s + nan.reshape(-1, 1)


def export(model, name, d_shape, noise_dtype=torch.float32, sidecar=None, two_inputs=True):
    b = 3
    x = torch.randn(b, *d_shape)
    t = torch.full((b,), 0.5, dtype=noise_dtype) if noise_dtype.is_floating_point else torch.zeros(b, dtype=noise_dtype)
    path = OUT / f"{name}.onnx"
    args = (x, t) if two_inputs else (x,)
    names = ["x", "sigma"] if two_inputs else ["x"]
    axes = {n: {0: "batch"} for n in names + ["score"]}
    torch.onnx.export(model, args, str(path), input_names=names, output_names=["score"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    if sidecar is not None:
        (OUT / f"{name}.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    print("wrote", path.name, path.stat().st_size, "bytes")


def main():
    toy = dict(means=[[-5.0, -5.0], [5.0, 5.0]], weights=[0.2, 0.8], tau=1.0)
    for out in ["score", "sigma-score", "eps", "denoiser"]:
        export(MixtureScore(**toy, output=out), f"toy2d-{out}", (2,),
               sidecar={"input": "sigma", "output": out, "data": "toy2d"})
    export(MixtureScore(**toy, noise="log-sigma"), "toy2d-logsigma", (2,),
           sidecar={"input": "log-sigma", "output": "score", "data": "toy2d"})
    sigmas = np.geomspace(10.0, 0.01, 100)
    export(MixtureScore(**toy, noise="level", sigmas=sigmas), "toy2d-level", (2,), torch.int64,
           sidecar={"input": "level", "output": "score", "data": "toy2d", "sigmas": sigmas.tolist()})

    raw = np.fromfile(OUT.parents[1] / "host" / "data" / "digits.u8", dtype=np.uint8).reshape(-1, 65)
    means = raw[:50, :64].astype(np.float64) / 16.0
    np.save(OUT / "digits50.npy", means.astype(np.float32))
    export(MixtureScore(means, np.full(50, 1 / 50), 0.05), "digits50", (1, 8, 8),
           sidecar={"input": "sigma", "output": "score", "data": "digits50.npy", "range": [0, 1]})

    export(MixtureScore([[0.0] * 200], [1.0], 0.0), "onepoint", (200,),
           sidecar={"input": "sigma", "output": "score"})

    # Bad models: no sidecar (the tests declare or omit conventions by flags).
    export(WrongShape(**toy), "bad-output-shape", (2,))
    export(NanBelow(**toy), "bad-nan", (2,))
    export(MixtureScore([[0.0, 0.0, 0.0]], [1.0], 1.0), "bad-dim3", (3,))
    export(MixtureScore([[0.0]], [1.0], 1.0), "bad-rank1", ())  # x of shape [batch]: no sample axis
    (OUT / "bad-not-onnx.onnx").write_text("this is not an ONNX file\n")


if __name__ == "__main__":
    main()
