"""NumPy reference for `anneal bench`: the same sampler step (mixture score by two matrix
products and a row softmax in float64, then the CAS update with fresh normal noise) at the same
sizes. Prints one JSON object: seconds per step (median) per case, and NumPy's SGEMM rate.

Usage: python3 numpy_step.py '[{"name": ..., "B": .., "K": .., "D": ..}, ...]' REPEATS
"""
import json
import sys
import time

import numpy as np

from numpy_run import score  # the same computation as the whole-run reference


def median_time(f, repeats):
    f()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    cases = json.loads(sys.argv[1])
    repeats = int(sys.argv[2])
    rng = np.random.default_rng(0)
    out = {"numpy": np.__version__, "cases": {}}
    for c in cases:
        b, k, d = c["B"], c["K"], c["D"]
        m = rng.standard_normal((k, d), dtype=np.float32)
        ln_w = np.log(np.full(k, 1.0 / k))
        norms2 = (m.astype(np.float64) ** 2).sum(1)
        state = {"x": rng.standard_normal((b, d), dtype=np.float32)}
        sigma, tau = 0.5, 0.1
        v = tau * tau + sigma * sigma
        gamma = 0.45 / 0.5
        eta = 1.0 - gamma**2
        beta = np.sqrt(eta)

        def step():
            x = state["x"]
            s = score(x, m, ln_w, norms2, v)
            z = rng.standard_normal((b, d), dtype=np.float32)
            state["x"] = x + np.float32(eta * sigma * sigma) * s + np.float32(beta * 0.45) * z

        out["cases"][c["name"]] = median_time(step, repeats)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    t = median_time(lambda: a @ a, max(5, repeats // 4))
    out["sgemm_gflops"] = 2 * 1024**3 / t / 1e9
    print(json.dumps(out))


if __name__ == "__main__":
    main()
