#!/bin/sh
# run.sh BUILD: the spec suite under BUILD/tide (busted's --lua) and under
# stock lua5.4 with BUILD/tide.so; ends with "N passed, N failed".
build=${1:-build}
export TIDE_BUILD="$build"
pass=0
skip=0
fail=0
runone () {
  label=$1
  shift
  # A hung run must end: it is counted as a failure.
  out=$(timeout 1500 "$@" -o TAP 2>&1)
  code=$?
  printf '%s\n' "$out" | sed "s|^|[$label] |"
  # A skipped spec ("ok N - # SKIP why") is not counted as passed.
  p=$(printf '%s\n' "$out" | grep '^ok ' | grep -vc '# SKIP')
  s=$(printf '%s\n' "$out" | grep '^ok ' | grep -c '# SKIP')
  f=$(printf '%s\n' "$out" | grep -c '^not ok ')
  if [ "$code" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass + p))
  skip=$((skip + s))
  fail=$((fail + f))
}
# A sanitized module loads into stock lua5.4 only with the runtimes preloaded.
preload=
if nm -D "$build/tide.so" 2>/dev/null | grep -q __asan_init; then
  preload="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
fi
export TIDE_PRELOAD="$preload"     # for specs that start stock lua5.4
runone tide lua5.4 /usr/bin/busted --lua="$build/tide"
LD_PRELOAD="$preload" LUA_CPATH="$build/?.so;;" runone lua5.4 \
  lua5.4 /usr/bin/busted
[ "$skip" -eq 0 ] || echo "$skip skipped (not counted as passed)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
