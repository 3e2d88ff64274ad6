"""Along the paths of `anneal bench`'s whole runs, how many of the score's products a row can skip
by the triangle-inequality bound of `host/src/score/batch_score/memo.rs`, and how many products
any exact method needs in the σ ≥ 2 steps — the figures BENCHMARKS.md quotes for issue 16.

The paths are those of the NumPy loop (`numpy_run.py`: the same σ and update coefficients as
anneal's run, fresh normal noise), with exact float64 scores, for the first ROWS rows. Per σ band:
- `memo`: the share of the products G = Y Mᵀ still taken when a row keeps, from its last full
  computation, its candidates S (within 38 nats of its best component, at least one), its point
  y₀ and ρ = the distance from y₀ to the nearest mean outside S, and skips the others while
  (ρ − ‖y − y₀‖)² exceeds the nearest candidate's squared distance by 2v·38 (the bound of
  memo.rs with exact arithmetic; a row that fails is computed in full and keeps new ones);
- for the σ ≥ 2 steps of the last case: the products of G (every component) and of R M over
  the weights above e⁻³⁶ alone, in GFLOP for the case's n.

Usage: python3 memo_paths.py CASES.json [ROWS]
CASES.json as `anneal bench --whole-only` writes it for numpy_run.py (into a temporary folder it
removes); to keep a copy, run the bench with `--python W`, W a script such as
    #!/bin/sh
    cp "$2" /tmp/cases.json; cp "$(dirname "$2")"/means*.npy /tmp/; echo '{"numpy":"-","runs":{}}'
and point the "means" paths at /tmp (this script looks for them beside CASES.json).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_run import band  # noqa: E402  (the bench's σ bands)

NAMES = ["σ≥2", "2–0.8", "0.8–0.3", "0.3–0.1", "0.1–0.03", "<0.03"]


def main():
    path = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    for c in json.load(open(path)):
        means = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(c["means"]))
        m = np.load(means).astype(np.float64)
        k, d = m.shape
        n2 = (m**2).sum(1)
        ln_w = np.asarray(c["ln_w"])
        rng = np.random.default_rng(0)
        x = c["sigma1"] * rng.standard_normal((rows, d))
        taken = np.zeros(6)
        full = np.zeros(6)
        y0 = None
        s_sets = [None] * rows
        reach = np.zeros(rows)
        g_high = rm_high = 0.0
        for sigma, cx, cs, cn, noise in c["steps"]:
            v = c["tau"] ** 2 + sigma * sigma
            d2 = np.maximum((x**2).sum(1)[:, None] - 2 * x @ m.T + n2[None, :], 0.0)
            logits = ln_w[None, :] - d2 / (2 * v)
            logits -= logits.max(1, keepdims=True)
            b = band(sigma)
            full[b] += rows * k
            if sigma >= 2:
                g_high += 2.0 * c["n"] * k * d
                rm_high += 2.0 * c["n"] * d * (logits >= -36).sum(1).mean()
            if y0 is None:
                ok = np.zeros(rows, bool)
                y0 = x.copy()
            else:
                delta = np.sqrt(((x - y0) ** 2).sum(1))
                near = np.array([d2[i, s_sets[i]].min() for i in range(rows)])
                ok = np.maximum(reach - delta, 0) ** 2 > near + 2 * v * 38
            taken[b] += sum(len(s_sets[i]) if ok[i] else k for i in range(rows))
            for i in np.where(~ok)[0]:
                keep = logits[i] >= -38
                s_sets[i] = np.where(keep)[0]
                reach[i] = np.sqrt(d2[i, ~keep].min()) if (~keep).any() else 0.0
                y0[i] = x[i]
            r = np.exp(logits)
            r /= r.sum(1, keepdims=True)
            x = cx * x + cs * ((r @ m - x) / v)
            if noise:
                x += cn * rng.standard_normal(x.shape)
        print(c["name"])
        print("  band              " + " ".join(f"{n:>9}" for n in NAMES))
        print("  products taken    " + " ".join(f"{t / f:9.4f}" for t, f in zip(taken, full)))
        print(f"  σ ≥ 2, n = {c['n']}: G {g_high / 1e9:.1f} GFLOP, R M over weights above e^-36 "
              f"{rm_high / 1e9:.1f} GFLOP")


if __name__ == "__main__":
    main()
