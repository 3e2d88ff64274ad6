"""NCSN's toy run as issue 16 states it, timed as a user runs it: the process's wall time and the
sampling time it prints, at 1 and 2 threads, REPS times each (interleaved), medians and ranges.
Several binaries, comma-separated, run interleaved too (an A/B on a noisy machine).

    python3 host/bench/toy_process.py target/release/anneal[,OTHER_BINARY] [REPS]
"""
import re
import statistics
import subprocess
import sys
import tempfile
import time

binaries = sys.argv[1].split(",")
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 15
cmd = ["sample", "--data", "toy2d", "--tau", "0", "--sampler", "als", "--sigma-max", "20",
       "--sigma-min", "1", "--levels", "10", "--steps-per-level", "100", "--eps", "0.05",
       "--n", "1280", "--force"]
times = {(b, t): ([], []) for b in binaries for t in (1, 2)}
with tempfile.TemporaryDirectory() as tmp:
    for _ in range(reps):
        for threads in (1, 2):
            for b in binaries:
                t0 = time.perf_counter()
                out = subprocess.run([b] + cmd + ["--threads", str(threads), "--out", f"{tmp}/t"],
                                     capture_output=True, text=True, check=True).stdout
                wall = time.perf_counter() - t0
                times[b, threads][0].append(float(re.search(r"steps: ([0-9.]+) ms", out).group(1)))
                times[b, threads][1].append(wall * 1e3)
med = statistics.median
for b in binaries:
    print(b)
    for threads in (1, 2):
        s, w = times[b, threads]
        other = [x - y for x, y in zip(w, s)]
        print(f"  threads {threads}: sampling median {med(s):.1f} ms [{min(s):.1f}-{max(s):.1f}], "
              f"process median {med(w):.1f} ms [{min(w):.1f}-{max(w):.1f}], "
              f"other median {med(other):.1f} ms [{min(other):.1f}-{max(other):.1f}] "
              f"({100 * med(other) / med(w):.0f}% of the process)")
    print(f"  speed-up 2 vs 1 (medians): {med(times[b, 1][0]) / med(times[b, 2][0]):.2f}x")
