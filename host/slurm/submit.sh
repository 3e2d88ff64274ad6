#!/usr/bin/env bash
# Submits a sharded anneal run to Slurm: a job array of N shards and the merge job, which starts
# when every shard has succeeded (--dependency=afterok). Prints the two job ids.
#
#   host/slurm/submit.sh tune|sample N DIR [anneal flags…]
#       e.g. host/slurm/submit.sh tune 16 sweeps/fig1 --data digits --levels 8,16,32,64
#   host/slurm/submit.sh --only 3,7 tune 16 sweeps/fig1 [the same flags]
#       resubmits shards 3 and 7 (failed or cancelled) and a new merge job.
#   host/slurm/submit.sh --gpu sample 8 samples/big --data digits --n 1000000
#       each sample shard on one GPU (--gres=gpu:1, anneal's --device cuda); tune runs on CPUs.
#
# Watch:   squeue -u "$USER";  anneal tune status DIR/shard-*
# Result:  DIR/merged (one process's output set); each task's log in DIR/logs/.
# Environment: ANNEAL (the anneal binary; default `anneal` on PATH), CPUS (per shard, default
# 1), SBATCH_FLAGS (extra sbatch flags for both jobs, e.g. "--partition=cpu --time=2:00:00").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
only="" gpu=""
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only=${2:-}; shift 2 ;;
        --gpu) gpu=1; shift ;;
        *) break ;;
    esac
done
if [ $# -lt 3 ] || { [ "$1" != tune ] && [ "$1" != sample ]; }; then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
kind=$1 n=$2 dir=$3
shift 3
gres=()
if [ -n "$gpu" ]; then
    if [ "$kind" = tune ]; then
        echo "submit.sh: --gpu with tune: tune runs on the CPU only; drop --gpu" >&2
        exit 2
    fi
    # One GPU per shard, and anneal told to use it (or fail, rather than draw on the CPU and
    # leave a shard whose device differs from the others': merge would refuse the mix).
    gres=(--gres=gpu:1)
    set -- "$@" --device cuda
fi
case "$n" in '' | *[!0-9]* | 0) echo "submit.sh: N = '$n' is not a whole number ≥ 1" >&2; exit 2 ;; esac
mkdir -p "$dir/logs"
dir=$(cd "$dir" && pwd)
array=${only:-1-$n}
if [ -n "$only" ] && [ -s "$dir/logs/jobs" ]; then
    # The earlier merge job waits on shards that failed: it can never start.
    scancel "$(cut -d' ' -f2 "$dir/logs/jobs")" 2>/dev/null || true
fi
export ANNEAL=${ANNEAL:-$(command -v anneal || echo anneal)}
# shellcheck disable=SC2086
shards=$(sbatch --parsable ${SBATCH_FLAGS:-} "${gres[@]}" --array="$array" --cpus-per-task="${CPUS:-1}" \
    --output="$dir/logs/shard-%a.out" "$here/shard.sbatch" "$kind" "$n" "$dir" "$@")
shards=${shards%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_FLAGS:-} --dependency="afterok:$shards" \
    --output="$dir/logs/merge.out" "$here/merge.sbatch" "$kind" "$dir")
merge=${merge%%;*}
echo "shards: job $shards (array $array of $n); merge: job $merge, after every shard succeeds"
echo "$shards $merge" > "$dir/logs/jobs"
