#!/bin/sh
# bench/run.sh BUILD: run every benchmark for tide (BUILD/tide) and its peers
# in one go, print the table and write it to BUILD/bench.txt.
# Each benchmark program prints "<metric>\t<value>" lines; this script
# collects them, takes peak RSS from /usr/bin/time, and hands everything to
# table.awk. Each benchmark runs in passes (every peer once a pass) and
# keeps each peer's best pass. A peer that cannot run is listed as n/a with
# the reason.
# Environment: LUA (lua5.4), NODE (node), PYTHON (Debian's /usr/bin/python3),
# BENCH_REPEAT (3 passes), BENCH_TIMEOUT (300 s per program),
# BENCH_ONLY (some of "tasks startup switch echo tls queue process fs
# http_client http_server redis workers"; all by default), NGINX (nginx). The fs section
# writes 266 MiB of files under a temporary directory (TMPDIR), removed at
# the end.
set -u

BUILD=${1:-build}
BENCH=$(dirname "$0")
TIDE=$BUILD/tide
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3 || echo python3)
REPEAT=${BENCH_REPEAT:-3}
TIMEOUT=${BENCH_TIMEOUT:-300}
LIMIT=$TIMEOUT
ONLY=${BENCH_ONLY:-tasks startup switch echo tls queue process fs http_client http_server redis workers}
BIN=$BUILD/bench
OUT=$BUILD/bench.txt

if [ ! -x /usr/bin/time ]; then
  echo "bench: /usr/bin/time is missing (Debian package time; make bench installs it)" >&2
  exit 1
fi

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  [ -f "$TMP/redis/pid" ] && kill "$(cat "$TMP/redis/pid")" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
DEFS=$TMP/defs
RESULTS=$TMP/results
: > "$RESULTS"
START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

say() { echo "bench: $*" >&2; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
record() { printf 'val\t%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }
failed() { printf 'fail\t%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }

# attempt CMD...: run CMD once under the time limit (LIMIT seconds) and
# /usr/bin/time.
# Leaves its output in $TMP/out and its peak RSS (KiB) in $TMP/rss; on
# failure returns 1 with a one-line reason in $TMP/why.
attempt() {
  /usr/bin/time -f %M -o "$TMP/time" timeout "$LIMIT" "$@" > "$TMP/out" 2> "$TMP/err"
  rc=$?
  tail -n 1 "$TMP/time" > "$TMP/rss"
  if [ "$rc" -eq 124 ]; then
    echo "timed out after $LIMIT s" > "$TMP/why"
  elif [ "$rc" -ne 0 ]; then
    { grep -v '^[[:space:]]*$' "$TMP/err" | grep -v '^stack traceback' | head -n 1 |
        cut -c1-90; echo "exit status $rc"; } | head -n 1 > "$TMP/why"
  else
    return 0
  fi
  return 1
}

# get KEY [FILE]: the value printed for KEY.
get() { awk -F '\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "${2:-$TMP/out}"; }

# Runs of a benchmark go in passes, each pass running every peer once, so
# that a burst of load on this machine does not fall on one peer's runs only.
# keep SEC PEER KEY lower|higher: keep the run in $TMP/out as PEER's best in
# section SEC if its KEY is the best so far; if it printed no KEY, record
# that and return 1.
keep() {
  _k=$TMP/keep.$1.$2 _key=$3 _dir=$4
  _v=$(get "$_key")
  if [ -z "$_v" ]; then
    echo "printed no $_key" > "$_k.fail"
    return 1
  fi
  if [ ! -f "$_k.out" ] || awk -v a="$_v" -v b="$(get "$_key" "$_k.out")" -v d="$_dir" \
      'BEGIN { exit !(d == "lower" ? a + 0 < b + 0 : a + 0 > b + 0) }'; then
    cp "$TMP/out" "$_k.out"
    cp "$TMP/rss" "$_k.rss"
  fi
}

# trial SEC PEER KEY lower|higher CMD...: one more run of CMD for PEER in
# section SEC, kept if its KEY is the best so far; after a failure the peer
# is not run again in that section.
trial() {
  _sec=$1 _peer=$2 _tkey=$3 _tdir=$4
  shift 4
  [ -f "$TMP/keep.$_sec.$_peer.fail" ] && return 1
  if attempt "$@"; then
    keep "$_sec" "$_peer" "$_tkey" "$_tdir"
    return
  fi
  cp "$TMP/why" "$TMP/keep.$_sec.$_peer.fail"
  return 1
}

# trials PEER "SEC:KEY:lower|higher ..." CMD...: one more run of CMD, a
# program printing the metrics of several sections, for PEER; each
# section keeps its own best run. A failed run fails them all.
trials() {
  _peer=$1 _list=$2
  shift 2
  if attempt "$@"; then
    for _s in $_list; do
      _sec=${_s%%:*} _rest=${_s#*:}
      _skey=${_rest%%:*} _sdir=${_rest#*:}
      [ -f "$TMP/keep.$_sec.$_peer.fail" ] || keep "$_sec" "$_peer" "$_skey" "$_sdir"
    done
    return 0
  fi
  for _s in $_list; do
    _sec=${_s%%:*}
    [ -f "$TMP/keep.$_sec.$_peer.fail" ] || cp "$TMP/why" "$TMP/keep.$_sec.$_peer.fail"
  done
  return 1
}

# skip SEC PEER REASON: PEER does not run in section SEC.
skip() { [ -f "$TMP/keep.$1.$2.fail" ] || echo "$3" > "$TMP/keep.$1.$2.fail"; }

# kept SEC PEER: put PEER's best run in $TMP/out and $TMP/rss, or record
# why there is none and return 1.
kept() {
  _k=$TMP/keep.$1.$2
  if [ -f "$_k.fail" ]; then failed "$1" "$2" "$(cat "$_k.fail")"; return 1; fi
  if [ ! -f "$_k.out" ]; then failed "$1" "$2" "did not run"; return 1; fi
  cp "$_k.out" "$TMP/out"
  cp "$_k.rss" "$TMP/rss"
}

# Which peers can run here; unavailable() prints why not (nothing if they can).
check() {
  case $1 in
    tide) [ -x "$TIDE" ] || echo "$TIDE not built" ;;
    lua|floor) command -v "$LUA" >/dev/null || echo "$LUA not found" ;;
    luv|cqueues)
      command -v "$LUA" >/dev/null || { echo "$LUA not found"; return; }
      mod=$1
      msg=$("$LUA" -e "require '$mod'" 2>&1) ||
        echo "$LUA cannot load $mod: $(echo "$msg" | head -n 1 | cut -c1-80)" ;;
    node*) command -v "$NODE" >/dev/null || echo "$NODE not found" ;;
    python*) "$PYTHON" -c '' 2>/dev/null || echo "$PYTHON not found" ;;
    c) [ -x "$BIN/echo_uv" ] || echo "bench/echo_uv.c did not compile" ;;
    curl) command -v curl >/dev/null || echo "curl not found" ;;
  esac
}
for p in tide lua floor luv cqueues node python c curl; do
  check "$p" > "$TMP/na.$p"
done
# Variants (tide_sleep0, node_await, python_protocol) need what their base needs.
unavailable() { cat "$TMP/na.${1%%_*}" 2>/dev/null; }

# ---------------------------------------------------------------- C helpers
mkdir -p "$BIN"
UV=$(pkg-config --cflags --libs libuv)
for prog in startup load_uv bulk_uv echo_uv http_idle_uv; do
  # shellcheck disable=SC2086
  cc -O2 -o "$BIN/$prog" "$BENCH/$prog.c" $UV 2> "$TMP/cc.$prog" ||
    { say "cc $prog.c failed:"; cat "$TMP/cc.$prog" >&2; rm -f "$BIN/$prog"; }
done
check c > "$TMP/na.c"

# ------------------------------------------------------------------- tasks
# tasks_cmd PEER: the command for the tasks benchmark (N follows).
tasks_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/tasks.lua" ;;
    floor) echo "$LUA $BENCH/tasks_floor.lua" ;;
    luv) echo "$LUA $BENCH/tasks_luv.lua" ;;
    cqueues) echo "$LUA $BENCH/tasks_cqueues.lua" ;;
    node) echo "$NODE $BENCH/tasks.js" ;;
    python) echo "$PYTHON $BENCH/tasks.py" ;;
  esac
}
TASK_PEERS="tide floor luv cqueues node python"
BIG_REPEAT=$(( REPEAT < 2 ? REPEAT : 2 ))   # a million tasks take long: at most 2 passes

if want tasks; then
  for peer in $TASK_PEERS; do
    why=$(unavailable "$peer")
    # The same program with N = 0: the baseline the per-task memory is above.
    # shellcheck disable=SC2046
    if [ -z "$why" ] && attempt $(tasks_cmd "$peer") 0; then
      cp "$TMP/rss" "$TMP/base.$peer"
    else
      [ -n "$why" ] || why=$(cat "$TMP/why")
      skip tasks100k "$peer" "$why"
      skip tasks1m "$peer" "$why"
    fi
  done
  for n in 100000 1000000; do
    if [ "$n" = 100000 ]; then sec=tasks100k passes=$REPEAT; else sec=tasks1m passes=$BIG_REPEAT; fi
    r=1
    while [ "$r" -le "$passes" ]; do
      for peer in $TASK_PEERS; do
        [ -f "$TMP/keep.$sec.$peer.fail" ] && continue
        say "tasks, N = $n, pass $r/$passes: $peer"
        # shellcheck disable=SC2046
        trial "$sec" "$peer" tasks_wall_s lower $(tasks_cmd "$peer") "$n"
      done
      r=$((r + 1))
    done
    for peer in $TASK_PEERS; do
      kept "$sec" "$peer" || continue
      rss=$(cat "$TMP/rss")
      record "${sec}_wall_s" "$peer" "$(get tasks_wall_s)"
      record "${sec}_rss_mib" "$peer" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')"
      record "${sec}_kib_per_task" "$peer" \
        "$(awk -v r="$rss" -v b="$(cat "$TMP/base.$peer")" -v n="$n" 'BEGIN { print (r - b) / n }')"
    done
  done
fi

# ----------------------------------------------------------------- startup
startup() {
  peer=$1
  shift
  why=$(unavailable "$peer")
  [ -z "$why" ] && [ ! -x "$BIN/startup" ] && why="bench/startup.c did not compile"
  if [ -n "$why" ]; then failed startup "$peer" "$why"; return; fi
  say "startup: $peer"
  if attempt "$BIN/startup" 20 "$@"; then
    record startup_ms "$peer" "$(get startup_ms)"
  else
    failed startup "$peer" "$(cat "$TMP/why")"
  fi
}
if want startup; then
  startup tide "$TIDE" -e ''
  startup lua "$LUA" -e ''
  startup node "$NODE" -e ''
  startup python_plain "$PYTHON" -c ''
fi

# ------------------------------------------------------------ task switches
ROUNDS=1000000
SWITCH_PEERS="tide tide_sleep0 floor luv cqueues node_await node_immediate python"
switch_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/switch.lua $ROUNDS" ;;
    tide_sleep0) echo "$TIDE $BENCH/switch_sleep0.lua $ROUNDS" ;;
    floor) echo "$LUA $BENCH/switch_floor.lua $ROUNDS" ;;
    luv) echo "$LUA $BENCH/switch_luv.lua $ROUNDS" ;;
    cqueues) echo "$LUA $BENCH/switch_cqueues.lua $ROUNDS" ;;
    node_await) echo "$NODE $BENCH/switch.js $ROUNDS await" ;;
    node_immediate) echo "$NODE $BENCH/switch.js $ROUNDS immediate" ;;
    python) echo "$PYTHON $BENCH/switch.py $ROUNDS" ;;
  esac
}
if want switch; then
  for peer in $SWITCH_PEERS; do
    why=$(unavailable "$peer")
    [ -n "$why" ] && skip switch "$peer" "$why"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $SWITCH_PEERS; do
      [ -f "$TMP/keep.switch.$peer.fail" ] && continue
      say "switch, pass $r/$REPEAT: $peer"
      # shellcheck disable=SC2046
      trial switch "$peer" switch_per_s higher $(switch_cmd "$peer")
    done
    r=$((r + 1))
  done
  for peer in $SWITCH_PEERS; do
    kept switch "$peer" && record switch_per_s "$peer" "$(get switch_per_s)"
  done
fi

# ---------------------------------------------------------------- TCP echo
# Request/response rows, SECTION:CONNECTIONS:MESSAGE-BYTES each; every run
# warms up for WARMUP_RR s, then measures SECONDS_RR s.
RR_ROWS="echo_rr100b10:10:100 echo_rr100b100:100:100 echo_rr16k10:10:16384"
SECONDS_RR=3 WARMUP_RR=1 MIB=256
ECHO_SECS="echo_rr100b10 echo_rr100b100 echo_rr16k10 echo_bulk"
ECHO_PEERS="tide tide_protocol luv cqueues node python python_protocol c"
# With two cores or more, the server runs on CPU 0 and the clients on CPU 1.
if [ "$(nproc)" -ge 2 ] && taskset -c 0,1 true 2>/dev/null; then
  PIN_SERVER="taskset -c 0" PIN_CLIENT="taskset -c 1"
  PINNED="Server pinned to CPU 0 and client to CPU 1 (taskset)."
else
  PIN_SERVER="" PIN_CLIENT=""
  PINNED="Not pinned (fewer than 2 cores, or no taskset): client and server share the cores."
fi
server_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/echo_server.lua" ;;
    tide_protocol) echo "$TIDE $BENCH/echo_server_protocol.lua" ;;
    luv) echo "$LUA $BENCH/echo_server_luv.lua" ;;
    cqueues) echo "$LUA $BENCH/echo_server_cqueues.lua" ;;
    node) echo "$NODE $BENCH/echo_server.js" ;;
    python) echo "$PYTHON $BENCH/echo_server.py" ;;
    python_protocol) echo "$PYTHON $BENCH/echo_server_protocol.py" ;;
    c) echo "$BIN/echo_uv 127.0.0.1 0" ;;
  esac
}

# cpu_ticks PID: utime + stime of process PID (all its threads) in clock
# ticks, from /proc/PID/stat; fields 14 and 15, counted after the command
# name, which is in parentheses and may hold spaces.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# serve_port CMD...: start the server CMD, pinned, as SERVER_PID and wait
# up to 10 s for the "port\t<n>" line it prints, left in $port; if none
# comes, return 1 with the reason in $why.
serve_port() {
  # The server is started directly (taskset execs it), so $! is its pid.
  # shellcheck disable=SC2086  # PIN_SERVER is meant to be split
  $PIN_SERVER "$@" > "$TMP/port" 2> "$TMP/server.err" &
  SERVER_PID=$!
  port=""
  tries=100
  while [ -z "$port" ] && [ "$tries" -gt 0 ] && kill -0 "$SERVER_PID" 2>/dev/null; do
    sleep 0.1
    tries=$((tries - 1))
    port=$(get port "$TMP/port")
  done
  [ -n "$port" ] && return 0
  why=$(grep -v '^[[:space:]]*$' "$TMP/server.err" | head -n 1 | cut -c1-90)
  why="server did not start${why:+: $why}"
  return 1
}

# echo_skip PEER REASON: PEER runs in none of the echo sections.
echo_skip() { for _s in $ECHO_SECS; do skip "$_s" "$1" "$2"; done; }
# echo_failed PEER: every echo section has given up on PEER.
echo_failed() {
  for _s in $ECHO_SECS; do [ -f "$TMP/keep.$_s.$1.fail" ] || return 1; done
}

# echo_round PEER: start PEER's server, wait for the port it prints, run each
# request/response row and the bulk client against it once, stop it.
echo_round() {
  peer=$1
  # shellcheck disable=SC2046  # the command is meant to be split
  if ! serve_port $(server_cmd "$peer"); then
    echo_skip "$peer" "$why"
  else
    for row in $RR_ROWS; do
      sec=${row%%:*} rest=${row#*:}
      # load_uv reads the server's CPU time from /proc/$SERVER_PID/stat itself,
      # at the start and the end of the measured interval.
      # shellcheck disable=SC2086  # PIN_CLIENT is meant to be split
      trial "$sec" "$peer" rr_per_s higher $PIN_CLIENT "$BIN/load_uv" 127.0.0.1 "$port" \
        "${rest%%:*}" "$SECONDS_RR" "${rest#*:}" "$WARMUP_RR" "$SERVER_PID"
    done
    # bulk_uv makes one connection: the server's CPU time is read around the
    # whole run and added to its output.
    if [ ! -f "$TMP/keep.echo_bulk.$peer.fail" ]; then
      c0=$(cpu_ticks "$SERVER_PID")
      # shellcheck disable=SC2086
      if attempt $PIN_CLIENT "$BIN/bulk_uv" 127.0.0.1 "$port" "$MIB"; then
        c1=$(cpu_ticks "$SERVER_PID")
        [ -n "$c0" ] && [ -n "$c1" ] &&
          awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v m="$MIB" \
            'BEGIN { printf "cpu_ms_per_mib\t%.3f\n", (b - a) / hz * 1000 / m }' >> "$TMP/out"
        keep echo_bulk "$peer" bulk_mib_per_s higher
      else
        cp "$TMP/why" "$TMP/keep.echo_bulk.$peer.fail"
      fi
    fi
  fi
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

if want echo; then
  LIMIT=60  # a client that cannot get through is given up on sooner
  for peer in $ECHO_PEERS; do
    why=$(unavailable "$peer")
    [ -z "$why" ] && [ ! -x "$BIN/load_uv" ] && why="bench/load_uv.c did not compile"
    [ -z "$why" ] && [ ! -x "$BIN/bulk_uv" ] && why="bench/bulk_uv.c did not compile"
    [ -n "$why" ] && echo_skip "$peer" "$why"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $ECHO_PEERS; do
      echo_failed "$peer" && continue
      say "echo, pass $r/$REPEAT: $peer"
      echo_round "$peer"
    done
    r=$((r + 1))
  done
  for peer in $ECHO_PEERS; do
    for row in $RR_ROWS; do
      sec=${row%%:*}
      kept "$sec" "$peer" || continue
      for m in rr_per_s p50_us p99_us cpu_us_per_msg; do
        v=$(get "$m")
        [ -n "$v" ] && record "${sec}_$m" "$peer" "$v"
      done
    done
    if kept echo_bulk "$peer"; then
      record bulk_mib_per_s "$peer" "$(get bulk_mib_per_s)"
      v=$(get cpu_ms_per_mib)
      [ -n "$v" ] && record bulk_cpu_ms_per_mib "$peer" "$v"
    fi
  done
  LIMIT=$TIMEOUT
fi

# --------------------------------------------------------------------- TLS
# A TLS echo server per peer (bench/tls_server.*, and bench/tls_echo_uv.c
# in C on libuv and OpenSSL, the ceiling) with an ECDSA P-256 certificate
# made here, driven by bench/tls_load.c (C on OpenSSL, TLS 1.3, no
# resumption): full handshakes from 4 client threads, round trips on 10
# kept connections, and $MIB MiB echoed on one connection; pinned and timed
# as the TCP echo rows.
TLS_SECS="tls_handshake tls_rr10 tls_bulk"
TLS_PEERS="tide node c"
tls_server_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/tls_server.lua $TMP/tls.pem $TMP/tls.key" ;;
    node) echo "$NODE $BENCH/tls_server.js $TMP/tls.pem $TMP/tls.key" ;;
    c) echo "$BIN/tls_echo_uv $TMP/tls.pem $TMP/tls.key" ;;
  esac
}
tls_skip() { for _s in $TLS_SECS; do skip "$_s" "$1" "$2"; done; }
tls_failed() {
  for _s in $TLS_SECS; do [ -f "$TMP/keep.$_s.$1.fail" ] || return 1; done
}

# tls_round PEER: start PEER's server, run each TLS client against it once.
tls_round() {
  peer=$1
  # shellcheck disable=SC2046  # the command is meant to be split
  if ! serve_port $(tls_server_cmd "$peer"); then
    tls_skip "$peer" "$why"
  else
    # shellcheck disable=SC2086
    trial tls_handshake "$peer" handshakes_per_s higher $PIN_CLIENT "$BIN/tls_load" \
      handshake 127.0.0.1 "$port" "$SECONDS_RR" 4 "$SERVER_PID"
    # shellcheck disable=SC2086
    trial tls_rr10 "$peer" rr_per_s higher $PIN_CLIENT "$BIN/tls_load" \
      rr 127.0.0.1 "$port" 10 "$SECONDS_RR" 100 "$WARMUP_RR" "$SERVER_PID"
    # shellcheck disable=SC2086
    trial tls_bulk "$peer" bulk_mib_per_s higher $PIN_CLIENT "$BIN/tls_load" \
      bulk 127.0.0.1 "$port" "$MIB" "$SERVER_PID"
  fi
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

if want tls; then
  LIMIT=60
  # shellcheck disable=SC2046
  cc -O2 -o "$BIN/tls_load" "$BENCH/tls_load.c" $(pkg-config --cflags --libs openssl) \
    -lpthread 2> "$TMP/cc.tls_load" || rm -f "$BIN/tls_load"
  # shellcheck disable=SC2046
  cc -O2 -o "$BIN/tls_echo_uv" "$BENCH/tls_echo_uv.c" \
    $(pkg-config --cflags --libs libuv openssl) 2> "$TMP/cc.tls_echo_uv" ||
    rm -f "$BIN/tls_echo_uv"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$TMP/tls.key" -out "$TMP/tls.pem" -days 1 -subj /CN=localhost \
    > "$TMP/openssl.err" 2>&1 || rm -f "$TMP/tls.pem"
  for peer in $TLS_PEERS; do
    why=$(unavailable "$peer")
    [ "$peer" = c ] && { why=; [ -x "$BIN/tls_echo_uv" ] || why="bench/tls_echo_uv.c did not compile"; }
    [ -z "$why" ] && [ ! -x "$BIN/tls_load" ] && why="bench/tls_load.c did not compile"
    [ -z "$why" ] && [ ! -f "$TMP/tls.pem" ] && why="openssl req failed"
    [ -n "$why" ] && tls_skip "$peer" "$why"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $TLS_PEERS; do
      tls_failed "$peer" && continue
      say "tls, pass $r/$REPEAT: $peer"
      tls_round "$peer"
    done
    r=$((r + 1))
  done
  for peer in $TLS_PEERS; do
    if kept tls_handshake "$peer"; then
      record tls_handshakes_per_s "$peer" "$(get handshakes_per_s)"
      v=$(get cpu_us_per_handshake)
      [ -n "$v" ] && record tls_cpu_us_per_handshake "$peer" "$v"
    fi
    if kept tls_rr10 "$peer"; then
      for m in rr_per_s p50_us p99_us cpu_us_per_msg; do
        v=$(get "$m")
        [ -n "$v" ] && record "tls_rr10_$m" "$peer" "$v"
      done
    fi
    if kept tls_bulk "$peer"; then
      record tls_bulk_mib_per_s "$peer" "$(get bulk_mib_per_s)"
      v=$(get cpu_ms_per_mib)
      [ -n "$v" ] && record tls_bulk_cpu_ms_per_mib "$peer" "$v"
    fi
  done
  LIMIT=$TIMEOUT
fi

# ----------------------------------------------------------- queue and lock
queue() {
  peer=$1 file=$2
  shift 2
  why=$(unavailable "$peer")
  [ -z "$why" ] && [ ! -f "$BENCH/$file" ] && why="bench/$file not present"
  if [ -n "$why" ]; then failed queue "$peer" "$why"; return; fi
  say "queue: $peer"
  if ! attempt "$@" "$BENCH/$file"; then
    failed queue "$peer" "$(cat "$TMP/why")"
    return
  fi
  for m in queue1_items_per_s queue100_items_per_s lock_uncontended_per_s lock_contended_per_s; do
    v=$(get "$m")
    [ -n "$v" ] && record "$m" "$peer" "$v"
  done
  [ -n "$(get queue1_items_per_s)" ] || failed queue "$peer" "bench/$file printed no queue1_items_per_s"
}
if want queue; then
  queue tide queue.lua "$TIDE"
  queue luv queue_luv.lua "$LUA"
  queue node queue.js "$NODE"
  queue python queue.py "$PYTHON"
fi

# ------------------------------------------------------------- subprocesses
# One run of bench/process* does both parts: the spawns, then the cat.
PROCESS_PEERS="tide luv node python"
process_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/process.lua 1000 100" ;;
    luv) echo "$LUA $BENCH/process_luv.lua 1000 100" ;;
    node) echo "$NODE $BENCH/process.js 1000 100" ;;
    python) echo "$PYTHON $BENCH/process.py 1000 100" ;;
  esac
}
PROCESS_KEYS="process_spawn:spawn1000_s:lower process_cat:cat100m_mb_per_s:higher"
if want process; then
  if ! command -v true >/dev/null || ! command -v cat >/dev/null; then
    for peer in $PROCESS_PEERS; do
      skip process_spawn "$peer" "true or cat not found"
      skip process_cat "$peer" "true or cat not found"
    done
  fi
  for peer in $PROCESS_PEERS; do
    why=$(unavailable "$peer")
    [ -n "$why" ] && skip process_spawn "$peer" "$why" && skip process_cat "$peer" "$why"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $PROCESS_PEERS; do
      [ -f "$TMP/keep.process_spawn.$peer.fail" ] && [ -f "$TMP/keep.process_cat.$peer.fail" ] &&
        continue
      say "process, pass $r/$REPEAT: $peer"
      # shellcheck disable=SC2046
      trials "$peer" "$PROCESS_KEYS" $(process_cmd "$peer")
    done
    r=$((r + 1))
  done
  for peer in $PROCESS_PEERS; do
    kept process_spawn "$peer" && record spawn1000_s "$peer" "$(get spawn1000_s)"
    kept process_cat "$peer" && record cat100m_mb_per_s "$peer" "$(get cat100m_mb_per_s)"
  done
fi

# -------------------------------------------------------------------- files
# The files (10,000 of 1 KiB and one of 256 MiB) are made once, by the first
# peer that runs (an unrecorded warm-up run), and then shared by all: every
# measured run reads them from the page cache.
FS_PEERS="tide luv node python"
FS_DIR=$TMP/fs
fs_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/fs.lua $FS_DIR 10000 256" ;;
    luv) echo "$LUA $BENCH/fs_luv.lua $FS_DIR 10000 256" ;;
    node) echo "$NODE $BENCH/fs.js $FS_DIR 10000 256" ;;
    python) echo "$PYTHON $BENCH/fs.py $FS_DIR 10000 256" ;;
  esac
}
FS_KEYS="fs_small:small_files_per_s:higher fs_big:bigfile_mb_per_s:higher"
if want fs; then
  for peer in $FS_PEERS; do
    why=$(unavailable "$peer")
    [ -n "$why" ] && skip fs_small "$peer" "$why" && skip fs_big "$peer" "$why"
  done
  for peer in $FS_PEERS; do
    [ -f "$TMP/keep.fs_small.$peer.fail" ] && continue
    say "fs, making the files: $peer"
    # shellcheck disable=SC2046
    attempt $(fs_cmd "$peer") && break
  done
  sync
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $FS_PEERS; do
      [ -f "$TMP/keep.fs_small.$peer.fail" ] && [ -f "$TMP/keep.fs_big.$peer.fail" ] && continue
      say "fs, pass $r/$REPEAT: $peer"
      # shellcheck disable=SC2046
      trials "$peer" "$FS_KEYS" $(fs_cmd "$peer")
    done
    r=$((r + 1))
  done
  for peer in $FS_PEERS; do
    kept fs_small "$peer" && record small_files_per_s "$peer" "$(get small_files_per_s)"
    kept fs_big "$peer" && record bigfile_mb_per_s "$peer" "$(get bigfile_mb_per_s)"
  done
  rm -rf "$FS_DIR"
fi

# ------------------------------------------------------------- HTTP client
# HTTP_N GETs of a 13-byte file by HTTP_CONC clients at once, each one's
# requests one after the other over its own kept-alive connection, to a
# local nginx (one worker, pinned as the echo servers are).
HTTP_N=20000 HTTP_CONC=50
HTTP_PEERS="tide node_agent node_fetch aiohttp curl"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
http_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/http_client.lua $HTTP_URL $HTTP_N $HTTP_CONC" ;;
    node_agent) echo "$NODE $BENCH/http_client.js $HTTP_URL $HTTP_N $HTTP_CONC agent" ;;
    node_fetch) echo "$NODE $BENCH/http_client.js $HTTP_URL $HTTP_N $HTTP_CONC fetch" ;;
    curl) echo "sh $BENCH/http_client_curl.sh $HTTP_URL $HTTP_N $HTTP_CONC" ;;
    aiohttp) echo "$PYTHON $BENCH/http_client_aiohttp.py $HTTP_URL $HTTP_N $HTTP_CONC" ;;
  esac
}
# http_nginx: start nginx on a free port, serving $TMP/nginx/www, and set
# HTTP_URL; 1 and why in $TMP/why if it does not start.
http_nginx() {
  d=$TMP/nginx
  mkdir -p "$d/www"
  printf 'hello world!\n' > "$d/www/hello.txt"
  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    { echo "no free port" > "$TMP/why"; return 1; }
  cat > "$d/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $d/nginx.pid; error_log $d/error.log;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path $d; proxy_temp_path $d; fastcgi_temp_path $d;
  uwsgi_temp_path $d; scgi_temp_path $d;
  server { listen 127.0.0.1:$port; root $d/www; default_type text/plain; }
}
EOF
  # shellcheck disable=SC2086
  $PIN_SERVER "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" > /dev/null 2>&1 &
  SERVER_PID=$!
  HTTP_URL=http://127.0.0.1:$port/hello.txt
  tries=50
  until curl -sf -o /dev/null "$HTTP_URL"; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "nginx did not start: $(head -n 1 "$d/error.log" 2>/dev/null | cut -c1-70)" > "$TMP/why"
      return 1
    fi
    sleep 0.1
  done
}
if want http_client; then
  why=""
  [ -x "$NGINX" ] || why="nginx not found (Debian package nginx)"
  command -v curl >/dev/null || why="curl not found"
  if [ -z "$why" ] && ! http_nginx; then why=$(cat "$TMP/why"); fi
  for peer in $HTTP_PEERS; do
    case $peer in
      aiohttp) w=${why:-$(unavailable python)}
        [ -n "$w" ] || "$PYTHON" -c 'import aiohttp' 2>/dev/null ||
          w="$PYTHON cannot import aiohttp (Debian package python3-aiohttp)" ;;
      *) w=${why:-$(unavailable "$peer")} ;;
    esac
    [ -n "$w" ] && skip http_client "$peer" "$w"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $HTTP_PEERS; do
      [ -f "$TMP/keep.http_client.$peer.fail" ] && continue
      say "http_client, pass $r/$REPEAT: $peer"
      # shellcheck disable=SC2046,SC2086
      trial http_client "$peer" http_client_per_s higher $PIN_CLIENT $(http_cmd "$peer")
    done
    r=$((r + 1))
  done
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
  fi
  for peer in $HTTP_PEERS; do
    kept http_client "$peer" || continue
    record http_client_per_s "$peer" "$(get http_client_per_s)"
    record http_client_rss_mib "$peer" "$(awk -v r="$(cat "$TMP/rss")" 'BEGIN { print r / 1024 }')"
  done
fi

# ------------------------------------------------------------- HTTP server
# wrk (HTTPD_CONNS kept-alive connections, HTTPD_SECS s, after 1 s of
# warm-up) against a server answering 13 bytes; then, on a fresh server,
# HTTPD_IDLE kept-alive connections left idle (bench/http_idle_uv.c) and
# the server's RSS before and after. Pinned as the echo servers are.
HTTPD_PEERS="tide node nginx nginx_lua aiohttp luahttp"
HTTPD_IDLE_PEERS="tide node nginx"
HTTPD_SECS=5 HTTPD_CONNS=50 HTTPD_IDLE=10000
HTTPD=$TMP/httpd
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
httpd_cmd() {  # PEER PORT
  case $1 in
    tide) echo "$TIDE $BENCH/http_server.lua $2" ;;
    node) echo "$NODE $BENCH/http_server.js $2" ;;
    nginx|nginx_lua) echo "$NGINX -p $HTTPD -c $HTTPD/$1.conf -e $HTTPD/error.log" ;;
    aiohttp) echo "$PYTHON $BENCH/http_server_aiohttp.py $2" ;;
    luahttp) echo "$LUA $BENCH/http_server_luahttp.lua $2" ;;
  esac
}
# httpd_conf PEER PORT: nginx's configuration, one worker, keep-alive 60 s;
# nginx_lua loads the Lua module (libnginx-mod-http-lua) and answers from
# content_by_lua_block.
httpd_conf() {
  if [ "$1" = nginx_lua ]; then
    load="load_module /usr/lib/nginx/modules/ndk_http_module.so; load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
    body="default_type text/plain; content_by_lua_block { ngx.print('Hello, World!') }"
  else
    load="" body="return 200 'Hello, World!';"
  fi
  cat > "$HTTPD/$1.conf" <<EOF
daemon off; master_process off; worker_processes 1;
$load
pid $HTTPD/nginx.pid; error_log $HTTPD/error.log;
events { worker_connections 20000; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path $HTTPD; proxy_temp_path $HTTPD; fastcgi_temp_path $HTTPD;
  uwsgi_temp_path $HTTPD; scgi_temp_path $HTTPD;
  server { listen 127.0.0.1:$2; location / { $body } }
}
EOF
}
httpd_stop() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
# httpd_start PEER: start PEER's server on a free port (HTTPD_PORT); 1 and
# why in $TMP/why if it does not answer.
httpd_start() {
  HTTPD_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    { echo "no free port" > "$TMP/why"; return 1; }
  case $1 in nginx*) httpd_conf "$1" "$HTTPD_PORT" ;; esac
  : > "$HTTPD/error.log"
  # shellcheck disable=SC2046,SC2086
  $PIN_SERVER $(httpd_cmd "$1" "$HTTPD_PORT") > "$HTTPD/server.out" 2>&1 &
  SERVER_PID=$!
  tries=100
  until curl -sf -o /dev/null "http://127.0.0.1:$HTTPD_PORT/"; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      why=$(cat "$HTTPD/server.out" "$HTTPD/error.log" | grep -v '^[[:space:]]*$' |
              grep -v '^stack traceback' | head -n 1 | cut -c1-80)
      echo "server did not start${why:+: $why}" > "$TMP/why"
      httpd_stop
      return 1
    fi
    sleep 0.1
  done
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# httpd_round PEER: wrk against a fresh server of PEER's, once.
httpd_round() {
  if ! httpd_start "$1"; then
    cp "$TMP/why" "$TMP/keep.http_server.$1.fail"
    return
  fi
  # shellcheck disable=SC2086
  $PIN_CLIENT wrk -t1 -c"$HTTPD_CONNS" -d1s "http://127.0.0.1:$HTTPD_PORT/" > /dev/null 2>&1
  # shellcheck disable=SC2086
  if attempt $PIN_CLIENT wrk -t1 -c"$HTTPD_CONNS" -d"${HTTPD_SECS}s" --latency \
      "http://127.0.0.1:$HTTPD_PORT/"; then
    awk '/Requests\/sec/ { print "http_server_per_s\t" $2 }
         / 99% / { v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0;
                   else if (v ~ /s$/) v = v * 1000; print "p99_ms\t" v }
         /Non-2xx|Socket errors/ { print "errors\t" $0 }' "$TMP/out" > "$TMP/out.wrk"
    if grep -q '^errors' "$TMP/out.wrk"; then
      grep '^errors' "$TMP/out.wrk" | head -n 1 | cut -f2 | sed 's/^ *//' | cut -c1-80 \
        > "$TMP/keep.http_server.$1.fail"
    else
      cp "$TMP/out.wrk" "$TMP/out"
      keep http_server "$1" http_server_per_s higher
    fi
  else
    cp "$TMP/why" "$TMP/keep.http_server.$1.fail"
  fi
  httpd_stop
}
# httpd_idle PEER: HTTPD_IDLE idle kept-alive connections to a fresh server
# of PEER's; idle_kib_per_conn and idle_rss_mib in $TMP/out, or 1 and why.
httpd_idle() {
  httpd_start "$1" || return 1
  sleep 0.5
  before=$(rss_kib "$SERVER_PID")
  # shellcheck disable=SC2086
  $PIN_CLIENT "$BIN/http_idle_uv" 127.0.0.1 "$HTTPD_PORT" "$HTTPD_IDLE" \
    > "$HTTPD/idle.out" 2> "$HTTPD/idle.err" &
  cpid=$!
  tries=600
  until grep -q ready "$HTTPD/idle.out"; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ] || ! kill -0 "$cpid" 2>/dev/null; then
      echo "the client did not get its $HTTPD_IDLE connections: $(head -n 1 "$HTTPD/idle.err" | cut -c1-60)" > "$TMP/why"
      kill "$cpid" 2>/dev/null
      wait "$cpid" 2>/dev/null
      httpd_stop
      return 1
    fi
    sleep 0.1
  done
  sleep 1
  after=$(rss_kib "$SERVER_PID")
  kill "$cpid" 2>/dev/null
  wait "$cpid" 2>/dev/null
  httpd_stop
  awk -v a="$after" -v b="$before" -v n="$HTTPD_IDLE" \
    'BEGIN { printf "idle_kib_per_conn\t%.2f\nidle_rss_mib\t%.1f\n", (a - b) / n, a / 1024 }' > "$TMP/out"
  echo "$after" > "$TMP/rss"
}
if want http_server; then
  mkdir -p "$HTTPD"
  why=""
  command -v wrk >/dev/null || why="wrk not found (Debian package wrk)"
  command -v curl >/dev/null || why="curl not found"
  for peer in $HTTPD_PEERS; do
    w=$why
    case $peer in
      nginx*) [ -x "$NGINX" ] || w=${w:-"nginx not found (Debian package nginx)"} ;;
      luahttp) w=${w:-$(unavailable lua)} ;;
      aiohttp) w=${w:-$(unavailable python)} ;;
      *) w=${w:-$(unavailable "$peer")} ;;
    esac
    case $peer in
      nginx_lua) [ -n "$w" ] || [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
          w="nginx's Lua module not installed (Debian package libnginx-mod-http-lua)" ;;
      aiohttp) [ -n "$w" ] || "$PYTHON" -c 'import aiohttp' 2>/dev/null ||
          w="$PYTHON cannot import aiohttp (Debian package python3-aiohttp)" ;;
      luahttp) [ -n "$w" ] || "$LUA" "$BENCH/http_server_luahttp.lua" check >/dev/null 2>&1 ||
          w="$LUA cannot load lua-http (Debian package lua-http)" ;;
    esac
    [ -n "$w" ] && skip http_server "$peer" "$w"
    [ -z "$w" ] && [ ! -x "$BIN/http_idle_uv" ] && w="bench/http_idle_uv.c did not compile"
    [ -n "$w" ] && skip http_server_idle "$peer" "$w"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $HTTPD_PEERS; do
      [ -f "$TMP/keep.http_server.$peer.fail" ] && continue
      say "http_server, pass $r/$REPEAT: $peer"
      httpd_round "$peer"
    done
    for peer in $HTTPD_IDLE_PEERS; do
      [ -f "$TMP/keep.http_server_idle.$peer.fail" ] && continue
      say "http_server, $HTTPD_IDLE idle connections, pass $r/$REPEAT: $peer"
      if httpd_idle "$peer"; then keep http_server_idle "$peer" idle_kib_per_conn lower
      else cp "$TMP/why" "$TMP/keep.http_server_idle.$peer.fail"; fi
    done
    r=$((r + 1))
  done
  for peer in $HTTPD_PEERS; do
    if kept http_server "$peer"; then
      record http_server_per_s "$peer" "$(get http_server_per_s)"
      record http_server_p99_ms "$peer" "$(get p99_ms)"
    fi
  done
  for peer in $HTTPD_IDLE_PEERS; do
    kept http_server_idle "$peer" || continue
    record http_idle_kib_per_conn "$peer" "$(get idle_kib_per_conn)"
    record http_idle_rss_mib "$peer" "$(get idle_rss_mib)"
  done
fi

# ----------------------------------------------------------------- workers
# One and two worker processes sharing one listening socket: tide
# --workers, Node.js cluster, nginx worker_processes 2. Nothing is pinned:
# on a 2-core machine the servers' workers and the load generator (one
# thread: load_uv, wrk -t1) share both cores, so with two workers the
# client takes a core's worth from them and the rows show it.
WK_PEERS="tide tide_w1 node_cluster2"
WK_HTTP_PEERS="tide tide_w1 node_cluster2 nginx_w2"
wk_unavailable() {
  case $1 in
    tide*) unavailable tide ;;
    node*) unavailable node ;;
    nginx*) [ -x "$NGINX" ] || echo "nginx not found (Debian package nginx)" ;;
  esac
}
wk_echo_cmd() {
  case $1 in
    tide_w1) echo "$TIDE --workers 1 $BENCH/echo_server.lua" ;;
    tide) echo "$TIDE --workers 2 $BENCH/echo_server.lua" ;;
    node_cluster2) echo "$NODE $BENCH/workers_cluster.js echo 2" ;;
  esac
}
wk_http_cmd() {  # PEER PORT
  case $1 in
    tide_w1) echo "$TIDE --workers 1 $BENCH/http_server.lua $2" ;;
    tide) echo "$TIDE --workers 2 $BENCH/http_server.lua $2" ;;
    node_cluster2) echo "$NODE $BENCH/workers_cluster.js http $2 2" ;;
    nginx_w2) echo "$NGINX -p $HTTPD -c $HTTPD/nginx_w2.conf -e $HTTPD/error.log" ;;
  esac
}
wk_stop() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
# wk_echo_round PEER: load_uv, 100 connections of 100 bytes, once.
wk_echo_round() {
  _pin=$PIN_SERVER PIN_SERVER=""
  # shellcheck disable=SC2046
  if ! serve_port $(wk_echo_cmd "$1"); then
    echo "$why" > "$TMP/keep.workers_echo.$1.fail"
  else
    trial workers_echo "$1" rr_per_s higher "$BIN/load_uv" 127.0.0.1 "$port" \
      100 "$SECONDS_RR" 100 "$WARMUP_RR" "$SERVER_PID"
  fi
  PIN_SERVER=$_pin
  wk_stop
}
# wk_http_round PEER: wrk -t1 -c50 against a fresh server, once.
wk_http_round() {
  HTTPD_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$1" = nginx_w2 ]; then
    cat > "$HTTPD/nginx_w2.conf" <<EOF
daemon off; master_process on; worker_processes 2;
pid $HTTPD/nginx.pid; error_log $HTTPD/error.log;
events { worker_connections 20000; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path $HTTPD; proxy_temp_path $HTTPD; fastcgi_temp_path $HTTPD;
  uwsgi_temp_path $HTTPD; scgi_temp_path $HTTPD;
  server { listen 127.0.0.1:$HTTPD_PORT; location / { return 200 'Hello, World!'; } }
}
EOF
  fi
  # shellcheck disable=SC2046
  $(wk_http_cmd "$1" "$HTTPD_PORT") > "$HTTPD/server.out" 2>&1 &
  SERVER_PID=$!
  tries=100
  until curl -sf -o /dev/null "http://127.0.0.1:$HTTPD_PORT/"; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server did not start: $(head -n 1 "$HTTPD/server.out" | cut -c1-70)" \
        > "$TMP/keep.workers_http.$1.fail"
      wk_stop
      return
    fi
    sleep 0.1
  done
  wrk -t1 -c"$HTTPD_CONNS" -d1s "http://127.0.0.1:$HTTPD_PORT/" > /dev/null 2>&1
  if attempt wrk -t1 -c"$HTTPD_CONNS" -d"${HTTPD_SECS}s" "http://127.0.0.1:$HTTPD_PORT/"; then
    awk '/Requests\/sec/ { print "http_server_per_s\t" $2 }
         /Non-2xx|Socket errors/ { print "errors\t" $0 }' "$TMP/out" > "$TMP/out.wrk"
    if grep -q '^errors' "$TMP/out.wrk"; then
      grep '^errors' "$TMP/out.wrk" | head -n 1 | cut -f2 | sed 's/^ *//' | cut -c1-80 \
        > "$TMP/keep.workers_http.$1.fail"
    else
      cp "$TMP/out.wrk" "$TMP/out"
      keep workers_http "$1" http_server_per_s higher
    fi
  else
    cp "$TMP/why" "$TMP/keep.workers_http.$1.fail"
  fi
  wk_stop
}
if want workers; then
  mkdir -p "$HTTPD"
  LIMIT=60
  for peer in $WK_HTTP_PEERS; do
    w=$(wk_unavailable "$peer")
    command -v wrk >/dev/null || w=${w:-"wrk not found (Debian package wrk)"}
    [ -n "$w" ] && skip workers_http "$peer" "$w"
    [ -z "$w" ] && [ ! -x "$BIN/load_uv" ] && w="bench/load_uv.c did not compile"
    [ -n "$w" ] && skip workers_echo "$peer" "$w"
  done
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    for peer in $WK_PEERS; do
      [ -f "$TMP/keep.workers_echo.$peer.fail" ] && continue
      say "workers echo, pass $r/$REPEAT: $peer"
      wk_echo_round "$peer"
    done
    for peer in $WK_HTTP_PEERS; do
      [ -f "$TMP/keep.workers_http.$peer.fail" ] && continue
      say "workers http, pass $r/$REPEAT: $peer"
      wk_http_round "$peer"
    done
    r=$((r + 1))
  done
  for peer in $WK_PEERS; do
    kept workers_echo "$peer" && record workers_echo_rr_per_s "$peer" "$(get rr_per_s)"
  done
  for peer in $WK_HTTP_PEERS; do
    kept workers_http "$peer" && record workers_http_per_s "$peer" "$(get http_server_per_s)"
  done
  LIMIT=$TIMEOUT
fi

# ------------------------------------------------------------------- table
# ------------------------------------------------------------------- redis
# 100,000 GETs of one key from redis-server (a fresh one on a free port, for
# the section): tide with lua-redis on tide.socket (50 tasks, 50
# connections), node with the redis client from npm (installed under
# BUILD/bench/npm at the first run: npm must reach its registry), stock
# lua5.4 with LuaSocket and lua-redis (one connection), redis-benchmark
# (C, 50 clients, no pipelining: the ceiling).
REDIS_N=${REDIS_N:-100000}
REDIS_PEERS="tide node lua redis_bench"
redis_cmd() {
  case $1 in
    tide) echo "$TIDE $BENCH/redis_get.lua $2 $REDIS_N 50" ;;
    node) echo "env NODE_PATH=$BIN/npm/node_modules $NODE $BENCH/redis_get.js $2 $REDIS_N 50" ;;
    lua) echo "$LUA $BENCH/redis_get_luasocket.lua $2 $REDIS_N" ;;
    redis_bench) echo "sh $BENCH/redis_benchmark.sh $2 $REDIS_N 50" ;;
  esac
}
if want redis; then
  rport=""
  if ! command -v redis-server >/dev/null; then
    rwhy="redis-server not found (Debian: redis-server)"
  elif [ ! -f /usr/share/lua/5.3/redis.lua ]; then
    rwhy="lua-redis not found (Debian: lua-redis)"
  else
    rport=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rdir=$TMP/redis
    mkdir -p "$rdir"
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$rdir" --daemonize yes --pidfile "$rdir/pid" --logfile "$rdir/log" ||
      rwhy="redis-server did not start"
    tries=100
    while [ "$tries" -gt 0 ] && ! redis-cli -p "$rport" ping >/dev/null 2>&1; do
      sleep 0.1
      tries=$((tries - 1))
    done
  fi
  if [ -n "$rport" ] && [ ! -d "$BIN/npm/node_modules/redis" ] && command -v npm >/dev/null; then
    say "redis: npm install redis@4 under $BIN/npm"
    mkdir -p "$BIN/npm"
    (cd "$BIN/npm" && timeout 300 npm install --no-audit --no-fund --silent redis@4 >/dev/null 2>&1)
  fi
  for i in $(seq "$REPEAT"); do
    for peer in $REDIS_PEERS; do
      why=${rwhy:-}
      [ -z "$why" ] && case $peer in
        tide|node|lua) why=$(unavailable "$peer") ;;
        redis_bench) command -v redis-benchmark >/dev/null || why="redis-benchmark not found (Debian: redis-tools)" ;;
      esac
      [ -z "$why" ] && [ "$peer" = node ] && [ ! -d "$BIN/npm/node_modules/redis" ] &&
        why=$(command -v npm >/dev/null && echo "npm install redis@4 failed" ||
              echo "npm not found (Debian: npm), so no redis client for node")
      [ -z "$why" ] && [ "$peer" = lua ] && ! "$LUA" -e 'require "socket"' 2>/dev/null &&
        why="$LUA cannot load LuaSocket (Debian: lua-socket)"
      if [ -n "$why" ]; then skip redis "$peer" "$why"; continue; fi
      say "redis: $peer (pass $i)"
      # shellcheck disable=SC2046  # the command is meant to be split
      trial redis "$peer" redis_get_per_s higher $(redis_cmd "$peer" "$rport")
    done
  done
  [ -n "$rport" ] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1
  for peer in $REDIS_PEERS; do
    kept redis "$peer" && record redis_get_per_s "$peer" "$(get redis_get_per_s)"
  done
fi

version() { "$@" 2>&1 | head -n 1; }
cat > "$DEFS" <<EOF
peer	tide	tide
peer	tide_sleep0	tide with tide.sleep(0)
peer	tide_protocol	tide Protocol (bench/echo_server_protocol.lua)
peer	floor	lua5.4 bare coroutines (floor)
peer	lua	lua5.4
peer	luv	lua5.4 + luv
peer	cqueues	lua5.4 + cqueues
peer	node	node
peer	node_await	node, await null (microtasks)
peer	node_immediate	node, setImmediate
peer	python	python3 asyncio
peer	python_plain	python3
peer	python_protocol	python3 asyncio Protocol
peer	c	libuv in C (ceiling)
peer	node_agent	node, http.Agent keep-alive
peer	node_fetch	node, fetch (undici)
peer	curl	curl --parallel
peer	nginx	nginx, one worker
peer	nginx_lua	nginx + Lua module, one worker
peer	aiohttp	python3 aiohttp
peer	luahttp	lua5.4 + lua-http
peer	redis_bench	redis-benchmark (C)
peer	tide_w1	tide --workers 1
peer	node_cluster2	node cluster, 2 workers
peer	nginx_w2	nginx, 2 workers
section	workers_echo	Workers: TCP echo, 100 connections, 100-byte messages, 2 worker processes (tide: --workers 2)	tide tide_w1 node_cluster2
metric	workers_echo	workers_echo_rr_per_s	round trips/s	higher
note	workers_echo	bench/load_uv.c as in the echo rows against bench/echo_server.lua under tide --workers 2 (and 1)
note	workers_echo	(the workers accept from the master's one socket) and bench/workers_cluster.js (Node.js
note	workers_echo	cluster). Not pinned: on $(nproc) cores the workers and the one-thread client share them. Best of $REPEAT.
section	workers_http	Workers: HTTP server, wrk -t1 -c$HTTPD_CONNS, $HTTPD_SECS s, 2 worker processes (tide: --workers 2)	tide tide_w1 node_cluster2 nginx_w2
metric	workers_http	workers_http_per_s	requests/s	higher
note	workers_http	bench/http_server.lua under tide --workers 2 (and 1); Node.js cluster (bench/workers_cluster.js);
note	workers_http	nginx worker_processes 2, return 200. Not pinned: wrk's thread competes with the
note	workers_http	workers for the $(nproc) cores. Best of $REPEAT passes.
section	tasks100k	Tasks: 100,000 tasks each sleep 100 ms, then all are awaited	tide floor luv cqueues node python
metric	tasks100k	tasks100k_wall_s	wall time (s)	lower
metric	tasks100k	tasks100k_rss_mib	peak RSS (MiB)	lower
metric	tasks100k	tasks100k_kib_per_task	KiB per task	lower
note	tasks100k	wall: from the first spawn to the last task's end, the 100 ms included. The floor has
note	tasks100k	no timer and does not sleep: it creates, resumes and finishes bare coroutines, timed
note	tasks100k	by os.clock (CPU time: stock Lua has no finer wall clock, and the floor never waits).
note	tasks100k	Peak RSS from /usr/bin/time; KiB per task: (peak RSS - peak RSS of the same program
note	tasks100k	with N = 0) / N. Best of $REPEAT passes.
section	tasks1m	Tasks: 1,000,000 tasks each sleep 100 ms, then all are awaited	tide floor luv cqueues node python
metric	tasks1m	tasks1m_wall_s	wall time (s)	lower
metric	tasks1m	tasks1m_rss_mib	peak RSS (MiB)	lower
metric	tasks1m	tasks1m_kib_per_task	KiB per task	lower
note	tasks1m	measured as for 100,000; best of $BIG_REPEAT passes.
section	startup	Startup: run an empty script (-e '' / -c ''), median of 20 runs	tide lua node python_plain
metric	startup	startup_ms	startup (ms)	lower
section	switch	Switch cost: two tasks take turns, 1,000,000 rounds	tide tide_sleep0 floor luv cqueues node_await node_immediate python
metric	switch	switch_per_s	switches/s	higher
note	switch	a switch is one task handing over to the other, two a round; best of $REPEAT passes.
note	switch	tide: tide.yield; luv: an idle handle per coroutine; cqueues and asyncio: sleep(0);
note	switch	the floor resumes two bare coroutines in turn from a loop, timed by os.clock.
section	echo_rr100b10	TCP echo, request/response: 10 connections, 100-byte messages	tide tide_protocol luv cqueues node python python_protocol c
ceiling	echo_rr100b10	c
metric	echo_rr100b10	echo_rr100b10_rr_per_s	round trips/s	higher
metric	echo_rr100b10	echo_rr100b10_p50_us	p50 latency (us)	lower
metric	echo_rr100b10	echo_rr100b10_p99_us	p99 latency (us)	lower
metric	echo_rr100b10	echo_rr100b10_cpu_us_per_msg	server CPU us/round trip	lower
note	echo_rr100b10	client: bench/load_uv.c (C, libuv), the same for every server: each connection writes
note	echo_rr100b10	one message, waits until all of its bytes have come back, and writes the next. After
note	echo_rr100b10	every connection is up, $WARMUP_RR s of this go uncounted, then $SECONDS_RR s are measured. Round
note	echo_rr100b10	trips/s: echoes completed in the measured interval / its length. Latency: from the
note	echo_rr100b10	write of a message to the last byte of its echo, p50 and p99 (nearest rank) over every
note	echo_rr100b10	round trip of the interval. Server CPU: utime + stime of the server process (all its
note	echo_rr100b10	threads) from /proc/PID/stat, read by the client at the start and the end of the
note	echo_rr100b10	measured interval (1/$HZ s ticks), divided by the round trips: the server's cost per
note	echo_rr100b10	message, which holds even where the client, not the server, is the bottleneck (a
note	echo_rr100b10	server that is not kept busy handles fewer messages per loop turn, so pays more each).
note	echo_rr100b10	127.0.0.1. $PINNED
note	echo_rr100b10	Best of $REPEAT passes by round trips/s; the other figures are from that run.
note	echo_rr100b10	peer/C: the peer's value over the C server's (bench/echo_uv.c, the ceiling).
section	echo_rr100b100	TCP echo, request/response: 100 connections, 100-byte messages	tide tide_protocol luv cqueues node python python_protocol c
ceiling	echo_rr100b100	c
metric	echo_rr100b100	echo_rr100b100_rr_per_s	round trips/s	higher
metric	echo_rr100b100	echo_rr100b100_p50_us	p50 latency (us)	lower
metric	echo_rr100b100	echo_rr100b100_p99_us	p99 latency (us)	lower
metric	echo_rr100b100	echo_rr100b100_cpu_us_per_msg	server CPU us/round trip	lower
note	echo_rr100b100	measured as for 10 connections and 100 bytes; peer/C: the peer's value over the C server's.
section	echo_rr16k10	TCP echo, request/response: 10 connections, 16 KiB messages	tide tide_protocol luv cqueues node python python_protocol c
ceiling	echo_rr16k10	c
metric	echo_rr16k10	echo_rr16k10_rr_per_s	round trips/s	higher
metric	echo_rr16k10	echo_rr16k10_p50_us	p50 latency (us)	lower
metric	echo_rr16k10	echo_rr16k10_p99_us	p99 latency (us)	lower
metric	echo_rr16k10	echo_rr16k10_cpu_us_per_msg	server CPU us/round trip	lower
note	echo_rr16k10	measured as for 10 connections and 100 bytes; peer/C: the peer's value over the C server's.
section	echo_bulk	TCP echo, bulk: one connection, $MIB MiB sent and echoed back	tide tide_protocol luv cqueues node python python_protocol c
ceiling	echo_bulk	c
metric	echo_bulk	bulk_mib_per_s	MiB/s	higher
metric	echo_bulk	bulk_cpu_ms_per_mib	server CPU ms per MiB	lower
note	echo_bulk	client: bench/bulk_uv.c (C, libuv), writing and reading at once; MiB echoed per
note	echo_bulk	second. Server CPU: utime + stime from /proc/PID/stat before and after the client's
note	echo_bulk	run (connect and close included), over the MiB echoed.
note	echo_bulk	$PINNED
note	echo_bulk	Best of $REPEAT passes (by MiB/s; its CPU figure is from the same run).
section	tls_handshake	TLS handshakes: new connections, TLS 1.3, ECDSA P-256 certificate	tide node c
ceiling	tls_handshake	c
metric	tls_handshake	tls_handshakes_per_s	handshakes/s	higher
metric	tls_handshake	tls_cpu_us_per_handshake	server CPU us/handshake	lower
note	tls_handshake	client: bench/tls_load.c (C on OpenSSL $(openssl version | cut -d' ' -f2)), 4 threads each connecting,
note	tls_handshake	handshaking (TLS 1.3, X25519, no resumption, the certificate not verified), sending
note	tls_handshake	close_notify and closing, for $SECONDS_RR s. Server: bench/tls_server.* (tide.tls.serve,
note	tls_handshake	node's tls.createServer), a self-signed ECDSA P-256 certificate. Server CPU from /proc
note	tls_handshake	over the run, per handshake: the client's own cost (a verify less) often bounds the
note	tls_handshake	rate, so the CPU figure is the server's. $PINNED Best of $REPEAT passes.
note	tls_handshake	c: bench/tls_echo_uv.c, libuv with two OpenSSL memory BIOs per connection (BIO_s_mem).
section	tls_rr10	TLS echo, request/response: 10 kept connections, 100-byte messages	tide node c
ceiling	tls_rr10	c
metric	tls_rr10	tls_rr10_rr_per_s	round trips/s	higher
metric	tls_rr10	tls_rr10_p50_us	p50 latency (us)	lower
metric	tls_rr10	tls_rr10_p99_us	p99 latency (us)	lower
metric	tls_rr10	tls_rr10_cpu_us_per_msg	server CPU us/round trip	lower
note	tls_rr10	client: bench/tls_load.c, a thread per connection (blocking OpenSSL), each writing a
note	tls_rr10	message and reading its echo; $WARMUP_RR s of warm-up, $SECONDS_RR s measured, as the TCP rows.
section	tls_bulk	TLS echo, bulk: one connection, $MIB MiB sent and echoed back	tide node c
ceiling	tls_bulk	c
metric	tls_bulk	tls_bulk_mib_per_s	MiB/s	higher
metric	tls_bulk	tls_bulk_cpu_ms_per_mib	server CPU ms per MiB	lower
note	tls_bulk	client: bench/tls_load.c, one non-blocking connection writing 64 KiB pieces while reading
note	tls_bulk	the echo (AES-256-GCM, the TLS 1.3 default); server CPU before and after. Best of $REPEAT passes.
section	queue	Queue and lock: 1,000,000 items or acquire/release pairs (bench/queue*)	tide luv node python
metric	queue	queue1_items_per_s	Queue(1) items/s	higher
metric	queue	queue100_items_per_s	Queue(100) items/s	higher
metric	queue	lock_uncontended_per_s	Lock uncontended pairs/s	higher
metric	queue	lock_contended_per_s	Lock contended pairs/s	higher
note	queue	Queue(n): one producer task to one consumer task through a queue bounded at n.
note	queue	Lock: acquire/release pairs in one task, or shared by 4 tasks that each yield while
note	queue	holding it. luv has no queue or lock: bench/queue_luv.lua brings a minimal one. One run each.
section	process_spawn	Subprocesses, spawn: run \`true\` 1,000 times, 50 at a time, waiting for every exit	tide luv node python
metric	process_spawn	spawn1000_s	wall time (s)	lower
note	process_spawn	stdin, stdout and stderr inherited. tide: tide.process.spawn (posix_spawn, exit seen
note	process_spawn	through a pidfd); luv: uv.spawn; node: child_process.spawn; python3:
note	process_spawn	asyncio.create_subprocess_exec. Best of $REPEAT passes; this machine's $(nproc) cores run
note	process_spawn	the children too, so the kernel's fork/exec cost is most of it.
section	process_cat	Subprocesses, pipe: 100 MiB through \`cat\`, written and read at once	tide luv node python
metric	process_cat	cat100m_mb_per_s	MB/s (10^6 bytes)	higher
note	process_cat	64 KiB writes to cat's stdin while a reader takes its stdout; from the spawn to the
note	process_cat	last byte and the exit. Pipes: tide, luv and node socket pairs, python3 pipes (it reads
note	process_cat	with StreamReader.read(65536)). Same run as the spawns; best of $REPEAT passes.
section	fs_small	Files, small: read 10,000 files of 1 KiB whole, 64 at a time	tide luv node python
metric	fs_small	small_files_per_s	files/s	higher
note	fs_small	tide: tide.fs.read_file (open, fstat, read on libuv's thread pool; close); luv:
note	fs_small	uv.fs_open/fstat/read/close callbacks; node: fs.promises.readFile; python3:
note	fs_small	asyncio.to_thread(open + read) on the default executor. The files are in the page cache
note	fs_small	(made before the first pass), so this measures the trips to the threads, not the disk.
section	fs_big	Files, big: read one 256 MiB file from start to end in 1 MiB reads	tide luv node python
metric	fs_big	bigfile_mb_per_s	MB/s (10^6 bytes)	higher
note	fs_big	from the page cache, one read at a time. tide: File:read(1 MiB); luv: uv.fs_read;
note	fs_big	python3: to_thread(f.read) on an unbuffered file: each returns a new string or bytes.
note	fs_big	node: FileHandle.read into one reused Buffer. Same run as the small files; best of
note	fs_big	$REPEAT passes.
section	http_client	HTTP client: $HTTP_N GETs of a 13-byte file over $HTTP_CONC connections to a local nginx	tide node_agent node_fetch aiohttp curl
metric	http_client	http_client_per_s	requests/s	higher
metric	http_client	http_client_rss_mib	peak RSS (MiB)	lower
note	http_client	$HTTP_CONC clients at once, each one's requests one after the other on its kept-alive
note	http_client	connection, the whole body read. tide: tide.http.get in $HTTP_CONC tasks (libcurl's multi
note	http_client	on tide's loop); node: http.get with an http.Agent({keepAlive}), and fetch, in $HTTP_CONC
note	http_client	async functions; aiohttp: ClientSession.get in $HTTP_CONC asyncio tasks (a connector
note	http_client	of $HTTP_CONC kept connections); curl: --parallel --parallel-max $HTTP_CONC. nginx: one worker.
note	http_client	$PINNED Best of $REPEAT passes.
section	http_server	HTTP server: wrk, $HTTPD_CONNS kept-alive connections, $HTTPD_SECS s, answering 13 bytes	tide node nginx nginx_lua aiohttp luahttp
metric	http_server	http_server_per_s	requests/s	higher
metric	http_server	http_server_p99_ms	p99 latency (ms, wrk)	lower
note	http_server	wrk -t1 -c$HTTPD_CONNS after 1 s of warm-up, each peer on a fresh server. tide:
note	http_server	tide.http.serve (bench/http_server.lua); node: http.createServer; nginx: one worker,
note	http_server	\`return 200\`; nginx_lua: one worker, content_by_lua_block (libnginx-mod-http-lua);
note	http_server	aiohttp: web.Application; luahttp: lua-http's http.server on cqueues. A run with
note	http_server	socket errors or non-2xx answers counts as failed. $PINNED Best of $REPEAT passes.
section	http_server_idle	HTTP server memory: $HTTPD_IDLE idle kept-alive connections	tide node nginx
metric	http_server_idle	http_idle_kib_per_conn	KiB per connection	lower
metric	http_server_idle	http_idle_rss_mib	RSS with them (MiB)	lower
note	http_server_idle	bench/http_idle_uv.c (C, libuv) opens them, 100 at a time, each answered one GET, then
note	http_server_idle	leaves them open; the server's VmRSS (/proc/PID/status) before and 1 s after,
note	http_server_idle	over $HTTPD_IDLE. Each on a fresh server; lowest of $REPEAT passes.
section	redis	Redis: $REDIS_N GETs of one key from a local redis-server through its clients	tide node lua redis_bench
ceiling	redis	redis_bench
metric	redis	redis_get_per_s	GETs/s	higher
note	redis	tide: Debian's lua-redis, unchanged, on tide.socket (require "tide.luasocket"), 50 tasks each
note	redis	on its own connection, each task's GETs one after the other (bench/redis_get.lua); node: the
note	redis	redis client from npm (node-redis 4), 50 clients, each awaiting a GET before the next
note	redis	(bench/redis_get.js); lua: stock lua5.4, LuaSocket and lua-redis, one connection (LuaSocket
note	redis	blocks); redis_bench: redis-benchmark -c 50 -n $REDIS_N -t get -P 1, the ceiling.
note	redis	No pipelining anywhere. redis-server shares the machine's cores. Best of $REPEAT passes.
EOF

{
  echo "tide benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average before: $LOAD_BEFORE"
  echo "$("$TIDE" -v 2>&1 | grep -m1 '^tide');" \
    "$(version "$LUA" -v | cut -d' ' -f1-2); node $(version "$NODE" --version);" \
    "$(version "$PYTHON" --version); luv $("$LUA" -e 'io.write(require"luv".version_string())' 2>/dev/null || echo n/a);" \
    "cqueues $("$LUA" -e 'io.write(require"cqueues".VERSION)' 2>/dev/null || echo n/a); libuv $(pkg-config --modversion libuv)"
  echo
  awk -v only="$ONLY" -f "$BENCH/table.awk" "$DEFS" "$RESULTS"
  echo
  echo "total time $(( $(date +%s) - START )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$TMP/table"
cat "$TMP/table"
cp "$TMP/table" "$OUT"
