#!/bin/sh
# redis-benchmark (C, Debian's redis-tools), the ceiling of the redis
# section: C clients, no pipelining, N GETs.
# Usage: sh redis_benchmark.sh PORT [N [C]]. Prints <metric>\t<value>.
redis-benchmark -p "$1" -c "${3:-50}" -n "${2:-100000}" -t get -P 1 --csv |
  awk -F, '/GET/ { gsub(/"/, "", $2); printf "redis_get_per_s\t%.0f\n", $2 }'
