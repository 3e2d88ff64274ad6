#!/usr/bin/env bash
# Every GPU check of score networks (issue 15) in one command on a CUDA machine; nothing is
# built there:
#   bash gpu/bench/networks.sh BIN_DIR
# BIN_DIR holds `anneal` and, under deps/, the test binaries `device` (gpu/tests/device.rs) and
# `network_gpu` (host/tests/network_gpu.rs), built on any x86-64 Linux machine:
#   cargo build --release -p anneal
#   cargo test --release -p anneal-gpu --test device --no-run
#   cargo test --release -p anneal --test network_gpu --no-run
# (each prints its binary's path; copy them to BIN_DIR/deps/ and `anneal` to BIN_DIR/).
# tract-cuda needs the CUDA toolkit's headers (CUDA_HOME or /usr/local/cuda) and cuDNN, cuBLAS,
# the CUDA runtime and NVRTC on the library path: the Python wheels' nvidia/*/lib folders are
# added. Runs: nvidia-smi; the mixture path's parity tests; the network tests (GPU vs CPU
# samples, and GPU sample shards merged against the single GPU run); `anneal bench --score
# digits --device cuda` beside the PyTorch loop on the GPU; and `anneal sample --score digits`
# on the GPU and on this machine's CPU, for scale. With OUT set, the log is also written to
# $OUT/networks.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${1:?BIN_DIR}"
py="${PYTHON:-python3}"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  $("$py" -c 'import nvidia, os; [print(os.path.join(p, x, "lib")) for p in nvidia.__path__ for x in sorted(os.listdir(p))]' 2>/dev/null); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
log="${OUT:-/tmp}/networks.log"
status=0
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || status=1
  grep -m1 'model name' /proc/cpuinfo; nproc
  echo "== tract-cuda's first context (compiles its kernels with NVRTC once per machine)"
  time "$bin/anneal" sample --score digits --n 8 --levels 3 --device cuda --out /tmp/anneal-warm --force || status=1
  for t in "$bin"/deps/network_gpu "$bin"/deps/device; do
    echo "== $t"
    ANNEAL_REQUIRE_GPU=1 "$t" --test-threads 1 --nocapture || status=1
  done
  echo "== anneal bench --score digits --device cuda"
  for n in ${BENCH_N:-256 1000}; do
    "$bin/anneal" bench --score digits --device cuda --n "$n" --python "$py" --repeats "${REPEATS:-5}" || status=1
  done
  for dev in cuda cpu; do
    echo "== anneal sample --score digits --n 1000 --device $dev"
    "$bin/anneal" sample --score digits --n 1000 --device "$dev" --out "/tmp/anneal-net-$dev" --force || status=1
  done
  echo "exit status $status"
} 2>&1 | tee "$log"
exit $status
