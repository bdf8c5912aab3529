#!/bin/sh
# http_server.sh BUILD: requests/s of a server answering 13 bytes under
# wrk (50 kept-alive connections, 5 s), server on CPU 0 and wrk on CPU 1:
# tide.http.serve, Node.js http, nginx (one worker, `return 200`). Prints
# "name requests/s" lines.
BUILD=${1:-build}
BENCH=$(dirname "$0")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
run() {  # name port cmd...
  name=$1 p=$2
  shift 2
  taskset -c 0 "$@" > "$TMP/$name.log" 2>&1 &
  pid=$!
  tries=50
  until curl -sf -o /dev/null "http://127.0.0.1:$p/"; do
    tries=$((tries - 1))
    [ "$tries" -le 0 ] && { echo "$name did not start"; kill $pid; return; }
    sleep 0.1
  done
  r=$(taskset -c 1 wrk -t1 -c50 -d5s "http://127.0.0.1:$p/" | awk '/Requests\/sec/ { print $2 }')
  echo "$name $r"
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
}
p=$(port); run tide "$p" "$BUILD/tide" "$BENCH/http_server.lua" "$p"
p=$(port); command -v node > /dev/null && run node "$p" node "$BENCH/http_server.js" "$p"
p=$(port)
cat > "$TMP/nginx.conf" <<EOC
daemon off; master_process off; worker_processes 1;
pid $TMP/nginx.pid; error_log $TMP/error.log;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path $TMP; proxy_temp_path $TMP; fastcgi_temp_path $TMP;
  uwsgi_temp_path $TMP; scgi_temp_path $TMP;
  server { listen 127.0.0.1:$p; location / { return 200 'Hello, World!'; } }
}
EOC
command -v nginx > /dev/null && run nginx "$p" nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/error.log"
