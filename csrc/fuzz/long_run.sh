#!/bin/sh
# A long run of the .pakd loader fuzz target, outside CI (CI runs the corpus plus a bounded
# mutation run: tests/tools/test_fuzz_loader.py). Uses clang + libFuzzer when clang++ is present
# (Debian: apt-get install clang), the standalone mutation driver (gcc) otherwise; both under
# AddressSanitizer + UndefinedBehaviorSanitizer. Prints the executions and executions/s; a
# finding leaves its input in $ARTIFACTS (add it to csrc/fuzz/corpus/ once fixed).
#
#   csrc/fuzz/long_run.sh [RUNS [SECONDS]]      defaults: 10000000 executions, at most 900 s
set -eu
RUNS=${1:-10000000}
SECONDS_MAX=${2:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ARTIFACTS=${ARTIFACTS:-$ROOT/build/fuzz-findings}
mkdir -p "$ARTIFACTS"
cd "$ROOT"
if command -v clang++ >/dev/null 2>&1; then
    cmake --preset libfuzzer >/dev/null && cmake --build --preset libfuzzer >/dev/null
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    cp csrc/fuzz/corpus/* "$WORK"/  # libFuzzer adds to its corpus folder: a copy, not the seeds
    START=$(date +%s)
    build/libfuzzer/fuzz-loader "$WORK" -runs="$RUNS" -max_total_time="$SECONDS_MAX" \
        -rss_limit_mb=2560 -malloc_limit_mb=2048 -artifact_prefix="$ARTIFACTS/" \
        -print_final_stats=1 2>"$ARTIFACTS/libfuzzer.log" || STATUS=$?
    END=$(date +%s)
    EXECS=$(sed -n 's/^stat::number_of_executed_units: *//p' "$ARTIFACTS/libfuzzer.log")
    SECS=$((END - START))
    echo "libfuzzer: executions=${EXECS:-?} seconds=$SECS exec_per_s=$(( ${EXECS:-0} / (SECS > 0 ? SECS : 1) )) corpus=$(ls "$WORK" | wc -l) status=${STATUS:-0} log=$ARTIFACTS/libfuzzer.log"
    exit "${STATUS:-0}"
else
    cmake --preset fuzz >/dev/null && cmake --build --preset fuzz >/dev/null
    build/fuzz/fuzz-loader --runs "$RUNS" --seconds "$SECONDS_MAX" --seed "${SEED:-1}" \
        --artifacts "$ARTIFACTS" csrc/fuzz/corpus | tail -2
fi
