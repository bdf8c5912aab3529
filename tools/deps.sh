#!/bin/sh
# deps.sh PKG...: install the Debian packages that are missing (as root),
# or print the command that would.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing:$missing"
  apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
    { echo "apt-get install failed:$missing" >&2; exit 1; }
else
  echo "missing Debian packages; run: sudo apt-get install$missing" >&2
  exit 1
fi
