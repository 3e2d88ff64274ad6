#!/usr/bin/env bash
# Every GPU check of issue 18 in one command on a CUDA machine (nothing is built there):
#   bash gpu/bench/run.sh [BIN_DIR]
# BIN_DIR (default target/release) holds `anneal` and the anneal-gpu test binary `device-*`.
# Build them on any x86-64 Linux machine first:
#   cargo build --release -p anneal
#   cargo test -p anneal-gpu --release --no-run      # prints the path of tests/device.rs's binary
# Runs: nvidia-smi; the GPU parity tests (ANNEAL_REQUIRE_GPU=1: a missing GPU fails instead of
# skipping); `anneal bench --device cuda` (one step of three sizes, then the whole runs, each
# beside the PyTorch FP32 loop; VARIANTS=1 adds every variant of the GEMM path); then
# `anneal sample --data digits --n 1000` on the GPU and on this machine's CPU, for scale.
# With OUT set, the whole log is also written to $OUT/gpu-checks.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-target/release}"
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
log="${OUT:-/tmp}/gpu-checks.log"
status=0
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || status=1
  grep -m1 'model name' /proc/cpuinfo; nproc
  for t in "$bin"/device-*; do
    [ -x "$t" ] || continue
    echo "== $t"
    ANNEAL_REQUIRE_GPU=1 "$t" --test-threads 1 --nocapture || status=1
  done
  echo "== anneal bench --device cuda"
  extra=()
  [ "${VARIANTS:-0}" = 1 ] && extra+=(--variants)
  "$bin/anneal" bench --device cuda --python "${PYTHON:-python3}" --repeats "${REPEATS:-10}" "${extra[@]}" || status=1
  for dev in cuda cpu; do
    echo "== anneal sample --data digits --n 1000 --device $dev"
    "$bin/anneal" sample --data digits --n 1000 --device "$dev" --out "/tmp/anneal-digits-$dev" --force || status=1
  done
  echo "exit status $status"
} 2>&1 | tee "$log"
exit $status
