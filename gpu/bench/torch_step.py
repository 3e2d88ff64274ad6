"""PyTorch FP32 reference for `anneal bench --device cuda`: the same CAS step (mixture score by two
matrix products and a row softmax, fresh normal noise, the update) at the same sizes, TF32 off.
Prints one JSON object: seconds per step (median over REPEATS batches of 20 steps, CUDA events),
and the two matrix products alone.

Usage: python3 torch_step.py '[{"name": ..., "B": .., "K": .., "D": ..}, ...]' REPEATS
"""
import json
import math
import sys

import torch


def per_call(f, repeats, inner=20):
    f()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            f()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / inner)
    times.sort()
    return times[len(times) // 2]


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cases = json.loads(sys.argv[1])
    repeats = int(sys.argv[2])
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "cases": {}, "sgemm_pair": {}}
    sigma, tau, sigma_next = 0.5, 0.1, 0.45
    v = tau * tau + sigma * sigma
    gamma = sigma_next / sigma
    eta = 1.0 - gamma**2
    beta = math.sqrt(eta)
    for c in cases:
        b, k, d = c["B"], c["K"], c["D"]
        m = torch.randn(k, d, device=dev, generator=gen)
        half_norms2 = 0.5 * (m * m).sum(1)
        ln_w = torch.full((k,), -math.log(k), device=dev)
        state = {"x": torch.randn(b, d, device=dev, generator=gen)}

        def step():
            x = state["x"]
            logits = ln_w + (x @ m.T - half_norms2) / v  # the ‖x‖² term cancels in the softmax
            r = torch.softmax(logits, dim=1)
            s = (r @ m - x) / v
            z = torch.randn(b, d, device=dev, generator=gen)
            state["x"] = x + (eta * sigma * sigma) * s + (beta * sigma_next) * z

        g = torch.empty(b, k, device=dev)
        sp = torch.empty(b, d, device=dev)

        def sgemms():
            torch.matmul(state["x"], m.T, out=g)
            torch.matmul(g, m, out=sp)

        out["cases"][c["name"]] = per_call(step, repeats)
        out["sgemm_pair"][c["name"]] = per_call(sgemms, repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
