#!/usr/bin/env bash
# Run the benchmark's studies of one dataset, arm by arm: tuning, selection, confirmation
# (docs/benchmark.md, "Running it", steps 1-3), then the dataset's table (step 4).
#
#   bash experiments/benchmark/run.sh fashionmnist            # every arm, in the run order
#   bash experiments/benchmark/run.sh cifar10 sgd_cosine sgd   # these arms only
#
# Every step resumes: a study with its trials done returns at once, a trial lost to a
# killed worker is retried, selection.py leaves a written selection as it is (it refuses
# to replace one with other contents). So after a crash or a lost machine the same command
# goes on where the journals stopped. To stop after the current study, create the file
# $BENCHMARK_STOP (default /tmp/goalbrake-benchmark.stop); Ctrl-C stops the current
# study as `goalbrake sweep` does (the running trials are retried on the next run).
#
# Environment: GOALBRAKE (the goalbrake command, default `goalbrake`), PYTHON (default
# `python`), WORKERS (default 2), BENCHMARK_LOGS (per-study logs, default
# runs/benchmark-logs), GOALBRAKE_DATA (where CIFAR-10 is, as for `goalbrake fit`).
set -euo pipefail
cd "$(dirname "$0")/../.."

#: The run order of docs/benchmark.md's Status (arms 6, 7, 8, 2, 1, 5, 3, 4): every arm of
#: experiments/benchmark/selection.py's ARMS, once (tests/test_benchmark_select.py).
RUN_ORDER=(phs_goal phs_step phs_goal_measured sgd_cosine sgd phs sgd_step adamw_cosine)

dataset=${1:?usage: run.sh DATASET [ARM ...] (DATASET: fashionmnist or cifar10)}
shift
case $dataset in
  fashionmnist | cifar10) ;;
  *) echo "run.sh: unknown dataset '$dataset'; use fashionmnist or cifar10" >&2; exit 2 ;;
esac
arms=("$@")
[ ${#arms[@]} -gt 0 ] || arms=("${RUN_ORDER[@]}")
for arm in "${arms[@]}"; do  # every name is checked before any study starts
  if [ ! -f "experiments/benchmark/${dataset}_${arm}.yaml" ]; then
    echo "run.sh: unknown arm '$arm'; use one of: ${RUN_ORDER[*]}" >&2
    exit 2
  fi
done

goalbrake=${GOALBRAKE:-goalbrake}
python=${PYTHON:-python}
workers=${WORKERS:-2}
stop=${BENCHMARK_STOP:-/tmp/goalbrake-benchmark.stop}
logs=${BENCHMARK_LOGS:-runs/benchmark-logs}
mkdir -p "$logs"

say() { echo "$(date -u +%FT%TZ) $*"; }
stopped() { [ -e "$stop" ] && say "stop file $stop: stopping before the next study"; }
sweep() {  # sweep STUDY_FILE: one study, resumed from its journal
  local study=experiments/benchmark/$1
  "$goalbrake" sweep --config "$study.yaml" --workers "$workers" \
    --storage "journal:$study.journal" >>"$logs/$1.log" 2>&1
}

for arm in "${arms[@]}"; do
  stopped && exit 0
  say "$dataset $arm: tuning (log: $logs/${dataset}_${arm}.log)"
  sweep "${dataset}_${arm}"
  stopped && exit 0
  if [ ! -f "experiments/benchmark/${dataset}_${arm}_confirm.yaml" ]; then
    say "$dataset $arm: selection"
    "$python" experiments/benchmark/selection.py --dataset "$dataset" --arm "$arm"
  fi
  say "$dataset $arm: confirmation (log: $logs/${dataset}_${arm}_confirm.log)"
  sweep "${dataset}_${arm}_confirm"
done
say "$dataset: the table and the figure"
"$python" experiments/benchmark/report.py --dataset "$dataset"
