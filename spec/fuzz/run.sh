#!/bin/sh
# run.sh BUILD SECONDS NAME...: run each libFuzzer harness BUILD/fuzz_NAME
# for SECONDS on its corpus: spec/fuzz/NAME (seeds and regression inputs,
# kept in git) and BUILD/corpus/NAME (what the runs found, not kept);
# SECONDS 0 only runs the corpus. FUZZ_MERGE=1 adds the inputs that reach
# new code to spec/fuzz/NAME. A crash leaves BUILD/crash-NAME-*, and the
# run fails.
build=$1
secs=$2
shift 2
status=0
limit="-max_total_time=$secs"
[ "$secs" = 0 ] && limit="-runs=0"
for name in "$@"; do
  mkdir -p "$build/corpus/$name"
  log="$build/fuzz-$name.log"
  "$build/fuzz_$name" "$limit" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$build/crash-$name-" \
    "$build/corpus/$name" "spec/fuzz/$name" > "$log" 2>&1
  code=$?
  # The last status line: runs, coverage, features, corpus.
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
  cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
  if [ "$code" -ne 0 ]; then
    echo "fuzz_$name: FAILED (exit $code); see $log and $build/crash-$name-*"
    grep -E '^(fuzz:|==[0-9]+==ERROR|SUMMARY)|runtime error' "$log" | head -n 5
    status=1
    continue
  fi
  echo "fuzz_$name: ${runs:-?} runs in ${took:-$secs} s, cov ${cov:-?}," \
    "ft ${ft:-?}, corpus ${corp:-?}"
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    "$build/fuzz_$name" -merge=1 "spec/fuzz/$name" "$build/corpus/$name" \
      > "$build/fuzz-$name.merge.log" 2>&1 || status=1
  fi
done
exit $status
