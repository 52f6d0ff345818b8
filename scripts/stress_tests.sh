#!/usr/bin/env bash
# Run tests N times in a row while B busy loops load the CPUs, as CI on a busy 2-core
# machine would: a failure here is timing luck to remove from the test.
#   scripts/stress_tests.sh [-n 20] [-b 2] [pytest arguments...]
# Each run's log: $STRESS_LOGS/run-<i>.log (default /tmp/stress-logs). Exit: failed runs.
set -u
N=20
B=2
while getopts "n:b:" opt; do
  case $opt in
    n) N=$OPTARG ;;
    b) B=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PY=${PY:-python}
LOGS=${STRESS_LOGS:-/tmp/stress-logs}
mkdir -p "$LOGS"
busy=()
for _ in $(seq "$B"); do
  (while :; do :; done) &
  busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
failed=0
for i in $(seq "$N"); do
  t0=$(date +%s)
  if "$PY" -m pytest -q -p no:cacheprovider "$@" >"$LOGS/run-$i.log" 2>&1; then
    verdict=pass
  else
    verdict=FAIL
    failed=$((failed + 1))
  fi
  echo "run $i/$N: $verdict, $(tail -1 "$LOGS/run-$i.log"), $(($(date +%s) - t0)) s," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "$((N - failed))/$N runs passed"
exit "$failed"
