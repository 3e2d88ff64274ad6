"""NCSN's toy run as issue 16 states it, timed as a user runs it: the process's wall time and the
sampling time it prints, at 1 and 2 threads, REPS times each (interleaved), medians and ranges.

    python3 host/bench/toy_process.py target/release/anneal [REPS]
"""
import re
import statistics
import subprocess
import sys
import tempfile
import time

binary = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 15
cmd = [binary, "sample", "--data", "toy2d", "--tau", "0", "--sampler", "als", "--sigma-max", "20",
       "--sigma-min", "1", "--levels", "10", "--steps-per-level", "100", "--eps", "0.05",
       "--n", "1280", "--force"]
times = {1: ([], []), 2: ([], [])}
with tempfile.TemporaryDirectory() as tmp:
    for _ in range(reps):
        for threads in (1, 2):
            t0 = time.perf_counter()
            out = subprocess.run(cmd + ["--threads", str(threads), "--out", f"{tmp}/t{threads}"],
                                 capture_output=True, text=True, check=True).stdout
            wall = time.perf_counter() - t0
            times[threads][0].append(float(re.search(r"steps: ([0-9.]+) ms", out).group(1)))
            times[threads][1].append(wall * 1e3)
med = statistics.median
for threads in (1, 2):
    s, w = times[threads]
    print(f"threads {threads}: sampling median {med(s):.1f} ms [{min(s):.1f}-{max(s):.1f}], "
          f"process median {med(w):.1f} ms [{min(w):.1f}-{max(w):.1f}], "
          f"other {med(w) - med(s):.1f} ms ({100 * (1 - med(s) / med(w)):.0f}%)")
print(f"speed-up 2 vs 1 (medians): {med(times[1][0]) / med(times[2][0]):.2f}x")
