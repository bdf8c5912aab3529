#!/bin/sh
# luatests.sh: run Lua 5.4's own test suite ("testes") under stock lua5.4
# and under tide, file by file, and print a table of the outcomes.
#
#   tools/luatests.sh [-n] [-t SECONDS] [-k DIR] [-x 'FILE:LINE ...']
#                     TESTES TIDE [LUA]
#
# TESTES  an extracted testes/ directory of the Lua release that matches the
#         lua5.4 in use (Debian 12: 5.4.4); this script downloads nothing.
# TIDE    the tide binary (build/tide).
# LUA     the reference interpreter (default: lua5.4 on the PATH).
#
# -n          non-portable mode: _U, _soft and _port unset, so main.lua (the
#             command line), the C-library part of attrib.lua and the long
#             tests run too. The C libraries in TESTES/libs are built first
#             if they are missing (needs make, gcc and liblua5.4-dev).
# -t SECONDS  time limit per file and interpreter (default 300). main.lua
#             starts background interpreters; one left running by a failure
#             is in the same process group and ends with the time limit.
# -k DIR      keep each run's output in DIR (FILE.lua5.4.log, FILE.tide.log).
# -x LIST     tide failures that are intended differences, as the FILE:LINE
#             their error report names (none by default). A run under
#             tide that fails there is shown as "xfail".
#
# Portable mode (the default) sets what all.lua derives from _U=true:
# `INTERP -e "_U=true _soft=true _port=true _nomsg=true" FILE.lua`, from
# within TESTES (run alone, a file reads _soft and _port, not _U). Files run
# one after the other (some write temporary files there), all.lua last, as
# the suite's own driver; standard input is an empty pipe (files.lua seeks
# on it). big.lua yields its results: in non-portable mode it runs through
# coroutine.wrap, as all.lua runs it. heavy.lua (memory exhaustion) and the
# helper modules (bwcoercion.lua, tracegc.lua) are not run.
#
# The last line is the summary. Exit status: 0 if every file that passes
# under LUA passes under tide or fails there only at an expected place, 1 if
# not, 2 on a usage error.

# Intended differences of tide, as FILE:LINE (see the comments of the tests
# there): none at present.
expected=

usage () {
  echo "usage: $0 [-n] [-t SECONDS] [-k DIR] [-x 'FILE:LINE ...']" \
       "TESTES TIDE [LUA]" >&2
  exit 2
}

portable=1
limit=300
keep=
while getopts nt:k:x: opt; do
  case $opt in
    n) portable= ;;
    t) limit=$OPTARG ;;
    k) keep=$OPTARG ;;
    x) expected=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] && [ $# -le 3 ] || usage

testes=$1
tide=$2
lua=${3:-lua5.4}

[ -f "$testes/all.lua" ] || { echo "$0: no all.lua in $testes" >&2; exit 2; }

# Absolute paths: the runs happen from within TESTES.
abspath () {
  case $1 in
    */*) (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")") ;;
    *) command -v "$1" ;;
  esac
}
testes=$(cd "$testes" && pwd)
tide=$(abspath "$tide") && [ -x "$tide" ] ||
  { echo "$0: tide binary not found: $2" >&2; exit 2; }
lua=$(abspath "$lua") && [ -x "$lua" ] ||
  { echo "$0: interpreter not found: ${3:-lua5.4}" >&2; exit 2; }

if [ -n "$keep" ]; then
  mkdir -p "$keep" || exit 2
  logs=$(cd "$keep" && pwd)
else
  logs=$(mktemp -d "${TMPDIR:-/tmp}/luatests.XXXXXX") || exit 2
  trap 'rm -rf "$logs"' EXIT
  trap 'exit 130' INT TERM
fi

if [ -n "$portable" ]; then
  setup='_U=true _soft=true _port=true _nomsg=true'
  mode='portable (_U, _soft, _port, _nomsg = true)'
else
  setup='_U=nil'
  mode='non-portable (_U, _soft, _port unset)'
  if [ ! -f "$testes/libs/all" ]; then
    inc=$(pkg-config --variable=includedir lua5.4 2>/dev/null)
    [ -f "$inc/lua5.4/lua.h" ] && inc=$inc/lua5.4
    [ -f "$inc/lua.h" ] || inc=/usr/include/lua5.4
    if ! (cd "$testes/libs" && make -s LUA_DIR="$inc") >"$logs/libs.log" 2>&1
    then
      echo "note: could not build the C libraries in $testes/libs" \
           "(see $logs/libs.log); attrib.lua will fail in both" >&2
    fi
  fi
fi

# The files all.lua runs, in its order, then all.lua.
files="main gc db calls strings literals tpack attrib gengc locals
       constructs code big cstack nextvar pm utf8 api events vararg closure
       coroutine goto errors math sort bitwise verybig files all"

bigwrap="local f = coroutine.wrap(assert(loadfile('big.lua')))
assert(f() == 'b'); assert(f() == 'a')"

# Milliseconds since the epoch where date knows %N, else seconds * 1000.
now_ms () {
  t=$(date +%s%N 2>/dev/null)
  case $t in
    *N|'') echo $(($(date +%s) * 1000)) ;;
    *) echo $((t / 1000000)) ;;
  esac
}

# run NAME INTERP LOG: sets rc and ms.
run () {
  t0=$(now_ms)
  if [ "$1" = big ] && [ -z "$portable" ]; then
    set -- "$1" "$2" "$3" -e "$bigwrap"
  else
    set -- "$1" "$2" "$3" "$1.lua"
  fi
  : | (cd "$testes" && exec timeout "$limit" "$2" -e "$setup" "$4" ${5+"$5"}) \
    >"$3" 2>&1
  rc=$?
  ms=$(($(now_ms) - t0))
}

# The first line of an interpreter's error report in LOG (it starts with
# the interpreter's name), else the last line.
why () {
  awk -v p1="$2: " -v p2="$(basename "$2"): " '
    index($0, p1) == 1 || index($0, p2) == 1 { print; found = 1; exit }
    { last = $0 }
    END { if (!found) print last }' "$1" | cut -c1-160
}

# Is the error report of LOG (of INTERP) at an expected place?
isexpected () {
  w=$(why "$1" "$2")
  for x in $expected; do
    case $w in *" $x: "*|*"	$x: "*) return 0 ;; esac
  done
  return 1
}

verdict () {  # rc -> word
  case $1 in
    0) echo pass ;;
    124) echo timeout ;;
    *) echo "FAIL($1)" ;;
  esac
}

echo "Lua test suite in $testes, $mode"
echo "reference: $lua ($("$lua" -v 2>&1 | head -n 1))"
echo "tide:      $tide"
[ -n "$expected" ] && echo "expected tide failures at: $expected"
echo
printf '%-16s %-10s %8s   %-10s %8s   %s\n' file lua5.4 ms tide ms note
printf '%-16s %-10s %8s   %-10s %8s   %s\n' ---- ------ -- ---- -- ----

nfiles=0; lpass=0; tpass=0; xfail=0; worse=0; better=0; lms=0; tms=0
details=
for f in $files; do
  [ -f "$testes/$f.lua" ] || continue
  nfiles=$((nfiles + 1))
  run "$f" "$lua" "$logs/$f.lua5.4.log"; lrc=$rc; l_ms=$ms
  run "$f" "$tide" "$logs/$f.tide.log"; trc=$rc; t_ms=$ms
  lms=$((lms + l_ms)); tms=$((tms + t_ms))
  tword=$(verdict $trc)
  [ $lrc -eq 0 ] && lpass=$((lpass + 1))
  [ $trc -eq 0 ] && tpass=$((tpass + 1))
  note=
  if [ $lrc -eq 0 ] && [ $trc -ne 0 ]; then
    if [ $trc -ne 124 ] && isexpected "$logs/$f.tide.log" "$tide"; then
      xfail=$((xfail + 1)); tword=xfail; note='intended difference'
    else
      worse=$((worse + 1)); note='fails only under tide'
    fi
  elif [ $lrc -ne 0 ] && [ $trc -eq 0 ]; then
    better=$((better + 1)); note='fails only under lua5.4'
  fi
  printf '%-16s %-10s %8s   %-10s %8s   %s\n' "$f.lua" \
    "$(verdict $lrc)" "$l_ms" "$tword" "$t_ms" "$note"
  if [ $lrc -ne 0 ]; then
    details="$details
$f.lua under lua5.4: $(why "$logs/$f.lua5.4.log" "$lua")"
  fi
  if [ $trc -ne 0 ]; then
    details="$details
$f.lua under tide: $(why "$logs/$f.tide.log" "$tide")"
  fi
done

if [ -n "$details" ]; then
  echo
  echo "failures (first line of each error report):"
  printf '%s\n' "$details" | sed '1d'
fi
[ -n "$keep" ] && { echo; echo "logs in $logs"; }
echo
echo "summary: $nfiles files; lua5.4 $lpass passed, $((nfiles - lpass))" \
     "failed (${lms} ms); tide $tpass passed, $((nfiles - tpass)) failed" \
     "(${tms} ms), of which $xfail expected; $worse fail only under tide" \
     "unexpectedly, $better only under lua5.4"
[ $worse -eq 0 ]
