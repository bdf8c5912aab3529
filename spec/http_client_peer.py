#!/usr/bin/env python3
# http_client_peer.py PORTFILE: the peers of spec/http_client_spec.lua on
# 127.0.0.1, each on a free port: an origin server (python3's http.server,
# HTTP/1.1 keep-alive) whose paths act out what the specs need, and a proxy
# (absolute-form requests and CONNECT tunnels), and a listener that never
# accepts, its queue full (connects to it time out). Writes "origin proxy
# blackhole pid" to PORTFILE once all listen; ends after 10 minutes at most.
import gzip
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

stats = {"connects": 0, "forwards": 0}


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() in ("content-length", "transfer-encoding")
                   for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def request_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data, True
                data += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), False

    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        getattr(self, "p_" + (u.path.strip("/") or "hello"), self.p_missing)(q)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def p_missing(self, q):
        self.reply(404, b"no such path")

    def p_hello(self, q):
        self.reply(200, b"hello", [("Content-Type", "text/plain")])

    def p_echo(self, q):
        body, chunked = self.request_body()
        out = {
            "method": self.command, "path": self.path,
            "headers": {k.lower(): ", ".join(self.headers.get_all(k))
                        for k in self.headers.keys()},
            "body": body.decode("latin-1"), "chunked": chunked,
            "port": self.client_address[1],
        }
        self.reply(200, json.dumps(out).encode(),
                   [("Content-Type", "application/json")])

    def p_port(self, q):
        self.reply(200, str(self.client_address[1]).encode())

    def p_redirect(self, q):
        n = int(q.get("n", "1"))
        code = int(q.get("code", "302"))
        if n <= 0:
            self.reply(200, b"arrived")
        else:
            self.reply(code, b"moved", [("Location", "/redirect?n=%d&code=%d"
                                          % (n - 1, code))])

    def p_loop(self, q):
        self.reply(302, b"", [("Location", "/loop")])

    def p_status(self, q):
        code = int(q.get("code", "200"))
        self.reply(code, ("status %d" % code).encode())

    def p_gzip(self, q):
        data = gzip.compress(b"hello gzip\n" * 1000)
        self.reply(200, data, [("Content-Encoding", "gzip")])

    def p_headers(self, q):
        self.reply(200, b"h", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                               ("X-Multi", "one"), ("x-multi", "two")])

    def p_slow(self, q):
        time.sleep(float(q.get("s", "1")))
        self.reply(200, b"slow")

    def p_trickle(self, q):
        n, delay = int(q.get("n", "10")), float(q.get("delay", "0.2"))
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self.wfile.flush()
        time.sleep(float(q.get("first", "0")))
        try:
            for _ in range(n):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(delay)
        except OSError:
            pass

    def p_big(self, q):
        n = int(q.get("n", "1048576"))
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        block = b"0123456789abcdef" * 4096
        try:
            while n > 0:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        except OSError:
            pass

    def p_chunked(self, q):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"one\n", b"two\n", b"three\n"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")

    def p_half(self, q):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True

    def p_empty(self, q):
        self.close_connection = True

    def p_stats(self, q):
        self.reply(200, json.dumps(stats).encode())


# ---- The proxy ----------------------------------------------------------------

def relay(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def read_head(c):
    data = b""
    while b"\r\n\r\n" not in data:
        more = c.recv(4096)
        if not more:
            return None, b""
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1").split("\r\n"), rest


def proxy_one(c):
    lines, rest = read_head(c)
    if not lines:
        c.close()
        return
    method, target, version = lines[0].split(" ")
    if method == "CONNECT":
        host, port = target.rsplit(":", 1)
        if host != "127.0.0.1" and host != "localhost":
            c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            c.close()
            return
        try:
            s = socket.create_connection((host, int(port)))
        except OSError:
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            c.close()
            return
        stats["connects"] += 1
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            s.sendall(rest)
        threading.Thread(target=relay, args=(s, c), daemon=True).start()
        relay(c, s)
        return
    u = urlsplit(target)
    stats["forwards"] += 1
    s = socket.create_connection((u.hostname, u.port or 80))
    head = ["%s %s %s" % (method, u.path + ("?" + u.query if u.query else ""),
                          version)]
    for h in lines[1:]:
        k = h.split(":", 1)[0].lower()
        if k not in ("proxy-connection", "connection"):
            head.append(h)
    head += ["Via: 1.1 spec-proxy", "Connection: close"]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + rest)
    relay(s, c)
    c.close()
    s.close()


def proxy_serve(ls):
    while True:
        c, _ = ls.accept()
        threading.Thread(target=proxy_one, args=(c,), daemon=True).start()


def main():
    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    origin.daemon_threads = True
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    threading.Thread(target=proxy_serve, args=(ls,), daemon=True).start()
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fill = []
    for _ in range(64):             # until the kernel drops new SYNs
        c = socket.socket()
        c.settimeout(1.0)           # a loaded machine may take 0.2 s even to connect
        try:
            c.connect(hole.getsockname())
        except OSError:
            c.close()
            break
        fill.append(c)
    import os
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %d %d\n" % (origin.server_address[1],
                                   ls.getsockname()[1], hole.getsockname()[1],
                                   os.getpid()))
    os.rename(tmp, sys.argv[1])
    time.sleep(600)


main()
