#!/bin/sh
# http_client_curl.sh URL N CONC: N GETs of URL with curl --parallel, at
# most CONC at once (curl reuses its connections); prints requests/s.
url=$1 n=${2:-20000} conc=${3:-50}
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
i=0
while [ "$i" -lt "$n" ]; do
  printf 'url = "%s"\noutput = "/dev/null"\n' "$url"
  i=$((i + 1))
done > "$cfg"
start=$(date +%s%N)
curl --parallel --parallel-max "$conc" -s -K "$cfg" || exit 1
end=$(date +%s%N)
awk -v n="$n" -v ns=$((end - start)) 'BEGIN {
  printf "http_client_per_s\t%.0f\nhttp_client_wall_s\t%.3f\n", n / (ns / 1e9), ns / 1e9 }'
