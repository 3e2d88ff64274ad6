#!/usr/bin/env bash
# The GPU job of issue 7, in one command on a CUDA machine (nothing is built there):
#   bash gpu/bench/run.sh            # expects target/release/anneal and the test binaries below
# Build here first:
#   cargo build --release -p anneal
#   cargo test -p anneal-gpu --release --no-run   # test binaries under target/release/deps
# and carry target/release/anneal and the anneal-gpu test binaries (device-*, emulate-*, nvrtc-*).
# It runs the GPU parity tests (ANNEAL_REQUIRE_GPU=1: a missing GPU fails instead of skipping),
# then `anneal bench --device cuda` with the PyTorch reference.
set -uo pipefail
cd "$(dirname "$0")/../.."
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
for t in target/release/deps/device-*; do
  [ -x "$t" ] || continue
  echo "== $t"
  ANNEAL_REQUIRE_GPU=1 "$t" --test-threads 1 --nocapture || status=1
done
echo "== anneal bench --device cuda"
target/release/anneal bench --device cuda --python "${PYTHON:-python3}" --repeats "${REPEATS:-10}" || status=1
exit $status
