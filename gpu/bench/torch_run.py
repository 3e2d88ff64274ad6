"""PyTorch FP32 reference for the whole runs of `anneal bench --device cuda`: the same plan (anneal
passes every step's σ and update coefficients), the same means and weights, the same n, on the
same GPU, TF32 off. Per step: the mixture score by two matrix products and a row softmax, fresh
normal noise, the linear update x <- cx·x + cs·s + cn·ξ (CAS). Seconds per whole run: the median
over REPEATS runs after one warm-up, CUDA events around the step loop and the copy of the samples
to the host; x starts on the device. Also the two matrix products alone, once per step.

Usage: python3 torch_run.py CASES.json REPEATS   (CASES.json as written by anneal bench)
Prints one JSON object.
"""
import json
import os
import sys
import time

import numpy as np
import torch


def timed(f, repeats, dev):
    f()
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            f()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cases = json.load(open(sys.argv[1]))
    repeats = int(sys.argv[2])
    # ANNEAL_TORCH_DEVICE=cpu runs the same loop on the CPU (to check this script without a GPU).
    dev = torch.device(os.environ.get("ANNEAL_TORCH_DEVICE", "cuda"))
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    out = {"torch": torch.__version__, "device": name, "runs": {}, "sgemm_pairs": {}}
    for c in cases:
        m = torch.from_numpy(np.load(c["means"]).astype(np.float32)).to(dev)
        k, d = m.shape
        ln_w = torch.tensor(c["ln_w"], dtype=torch.float32, device=dev)
        half_norms2 = 0.5 * (m * m).sum(1)
        tau2 = c["tau"] ** 2
        n = c["n"]
        steps = c["steps"]  # [sigma, cx, cs, cn, noise]
        center = torch.tensor(c["center"], dtype=torch.float32, device=dev)
        gen = torch.Generator(device=dev).manual_seed(0)

        def run():
            x = center + c["sigma1"] * torch.randn(n, d, device=dev, generator=gen)
            for sigma, cx, cs, cn, noise in steps:
                v = tau2 + sigma * sigma
                logits = ln_w + (x @ m.T - half_norms2) / v  # the ‖x‖² term cancels in the softmax
                r = torch.softmax(logits, dim=1)
                s = (r @ m - x) / v
                x = cx * x + cs * s
                if noise:
                    x = x + cn * torch.randn(n, d, device=dev, generator=gen)
            return x.cpu()

        x = run()
        if not bool(torch.isfinite(x).all()):
            raise SystemExit(f"{c['name']}: the PyTorch run gave non-finite samples")
        out["runs"][c["name"]] = timed(run, repeats, dev)
        g = torch.empty(n, k, device=dev)
        sp = torch.empty(n, d, device=dev)
        y = torch.randn(n, d, device=dev, generator=gen)

        def pairs():
            for _ in steps:
                torch.matmul(y, m.T, out=g)
                torch.matmul(g, m, out=sp)

        out["sgemm_pairs"][c["name"]] = timed(pairs, repeats, dev)
        del m, g, sp, y
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
