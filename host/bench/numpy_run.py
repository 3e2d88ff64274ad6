"""NumPy reference for the whole runs of `anneal bench` (CPU): the same plan as `anneal sample`
runs it (anneal passes every step's σ and update coefficients), the same means, weights, τ and n.
Per step, the plain dense computation: G = X Mᵀ in float32, the logits and their row softmax in
float64, S = R M in float32, fresh normal noise, and the linear update x <- cx·x + cs·s + cn·ξ.
No tricks (no sparsity, no refinement). The BLAS threads are set by anneal through
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS before this script starts.

Seconds per whole run (one warm-up, then RUNS runs): median, min, max, and the seconds of each
σ band (σ ≥ 2, 2–0.8, 0.8–0.3, 0.3–0.1, 0.1–0.03, < 0.03) of the median run.

Usage: python3 numpy_run.py CASES.json RUNS   (CASES.json as written by anneal bench)
Prints one JSON object.
"""
import json
import sys
import time

import numpy as np

EDGES = [2.0, 0.8, 0.3, 0.1, 0.03]


def score(x, m, ln_w, norms2, v):
    """The mixture score at the rows of x: G = X Mᵀ in float32, logits and their row softmax in
    float64, S = R M in float32, (S − X)/v."""
    g = x @ m.T
    y2 = (x.astype(np.float64) ** 2).sum(1, keepdims=True)
    logits = ln_w - (y2 - 2.0 * g + norms2) / (2.0 * v)
    logits -= logits.max(1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(1, keepdims=True)
    return (r.astype(np.float32) @ m - x) / np.float32(v)


def band(sigma):
    for i, e in enumerate(EDGES):
        if sigma >= e:
            return i
    return len(EDGES)


def main():
    cases = json.load(open(sys.argv[1]))
    runs = int(sys.argv[2])
    out = {"numpy": np.__version__, "runs": {}}
    for c in cases:
        m = np.load(c["means"]).astype(np.float32)
        ln_w = np.asarray(c["ln_w"], dtype=np.float64)
        norms2 = (m.astype(np.float64) ** 2).sum(1)
        tau2 = c["tau"] ** 2
        n, d = c["n"], m.shape[1]
        steps = c["steps"]  # [sigma, cx, cs, cn, noise]
        rng = np.random.default_rng(0)

        def run():
            bands = [0.0] * (len(EDGES) + 1)
            x = np.float32(c["sigma1"]) * rng.standard_normal((n, d), dtype=np.float32)
            for sigma, cx, cs, cn, noise in steps:
                t = time.perf_counter()
                s = score(x, m, ln_w, norms2, tau2 + sigma * sigma)
                x = np.float32(cx) * x + np.float32(cs) * s
                if noise:
                    x += np.float32(cn) * rng.standard_normal((n, d), dtype=np.float32)
                bands[band(sigma)] += time.perf_counter() - t
            if not np.isfinite(x).all():
                raise SystemExit(f"{c['name']}: the NumPy run gave non-finite samples")
            return bands

        run()
        results = []
        for _ in range(runs):
            t = time.perf_counter()
            bands = run()
            results.append((time.perf_counter() - t, bands))
        results.sort(key=lambda r: r[0])
        med = results[len(results) // 2]
        out["runs"][c["name"]] = {
            "median": med[0],
            "min": results[0][0],
            "max": results[-1][0],
            "bands": med[1],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
