#!/usr/bin/env bash
# The GPU check of sample shards in one command on a CUDA machine (nothing is built there):
#   bash gpu/bench/shards.sh BIN_DIR
# BIN_DIR holds `anneal` and deps/network_gpu (host/tests/network_gpu.rs), built as
# gpu/bench/networks.sh says. Runs nvidia-smi, then host/tests/network_gpu.rs with
# ANNEAL_REQUIRE_GPU=1: first its shard test (GPU shards merged against the single GPU run:
# toy2d's direct path, digits' GEMM path, the shipped network; a GPU shard beside a CPU one
# refused), then the others (GPU vs CPU samples). With OUT set, the log is $OUT/shards.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${1:?BIN_DIR}"
py="${PYTHON:-python3}"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  $("$py" -c 'import nvidia, os; [print(os.path.join(p, x, "lib")) for p in nvidia.__path__ for x in sorted(os.listdir(p))]' 2>/dev/null); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
status=0
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || status=1
  t="$bin/deps/network_gpu"
  echo "== $t gpu_shards_merge_into_the_single_gpu_run"
  time ANNEAL_REQUIRE_GPU=1 "$t" --exact gpu_shards_merge_into_the_single_gpu_run --nocapture || status=1
  echo "== $t (the others)"
  time ANNEAL_REQUIRE_GPU=1 "$t" --skip gpu_shards --test-threads 1 --nocapture || status=1
  echo "exit status $status"
} 2>&1 | tee "${OUT:-/tmp}/shards.log"
exit $status
