#!/bin/sh
# oom.sh BUILD [STEP]: spec/embed/oom.c, built against BUILD/libtide.a, runs
# spec/embed/oom.lua with an allocator that fails its Nth allocation (once),
# the Nth and the next (twice), or every one from the Nth on (from), for
# every STEP-th N (default 1: every N) up to the run's own count, on tide's
# loop and on the host's; prints what it tried and how many runs ended
# cleanly, and fails if one did not.
build=${1:-build}
step=${2:-1}
san=
if nm "$build/libtide.a" 2>/dev/null | grep -q __asan_init; then
  san="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi
exe=$build/oomhost
# shellcheck disable=SC2046,SC2086
env -u LD_PRELOAD cc -Wall -Wextra -Werror -O1 -g $san -Iruntime \
  $(pkg-config --cflags lua5.4 libuv) -o "$exe" spec/embed/oom.c \
  "$build/libtide.a" $(pkg-config --libs lua5.4 libuv) -lm || exit 1
# a certificate for the TLS part of oom.lua
TIDE_OOM_TLS=$(mktemp -d)
export TIDE_OOM_TLS
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$TIDE_OOM_TLS/key.pem" -out "$TIDE_OOM_TLS/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 > /dev/null 2>&1 ||
  { echo "oom: openssl req failed" >&2; exit 1; }
count=$(env -u LD_PRELOAD "$exe" count spec/embed/oom.lua) || exit 1
to=$((count + count / 20))     # allocations vary a little from run to run
echo "oom: a run makes $count allocations; N from 1 to $to by $step"
out=$(mktemp)
status=0
for loop in "" -l; do
  for mode in once twice from end; do
    # the sweep's own status (a pipe into tee would give tee's)
    # shellcheck disable=SC2086
    env -u LD_PRELOAD "$exe" $loop sweep $mode 1 $to "$step" \
      spec/embed/oom.lua > "$out.one" || status=1
    cat "$out.one"
    cat "$out.one" >> "$out"
  done
done
awk '/^oom .*: tried / {
       s = $0; sub(/.*: tried /, "", s); t += s + 0
       s = $0; sub(/.*ended cleanly /, "", s); c += s + 0
     }
     END { printf "oom: in all, tried %d, ended cleanly %d\n", t, c }' "$out"
rm -f "$out" "$out.one"
rm -rf "$TIDE_OOM_TLS"
exit $status
