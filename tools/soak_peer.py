#!/usr/bin/env python3
"""soak_peer.py: the python3 peer of tools/soak.lua, on 127.0.0.1 only.

Usage: python3 soak_peer.py PORT RATE CONCURRENCY

Serves TCP echo on a free port (printed first on stdout as "port N"), with
flow control, for tide's clients; and churns connections to tide's echo
server on PORT: RATE connections a second in all, CONCURRENCY at a time,
each sending 1 to 4096 random bytes, reading them back, checking them and
closing. A line "stop" (or the end of stdin) stops the clients; once those
under way have finished it prints "done" and its counts, and exits.
"""
import asyncio
import os
import random
import sys

stats = {"ok": 0, "bad": 0, "errors": 0, "sent": 0,
         "accepted": 0, "echoed": 0}


class Echo(asyncio.Protocol):
    """Echo with flow control: stop reading while the peer is not."""

    def connection_made(self, transport):
        self.transport = transport
        stats["accepted"] += 1

    def data_received(self, data):
        stats["echoed"] += len(data)
        self.transport.write(data)

    def eof_received(self):
        return False                    # close once the echo has gone out

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def churn_one(port):
    n = random.randint(1, 4096)
    data = os.urandom(n)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        back = await reader.readexactly(n)
    finally:
        writer.close()
        await writer.wait_closed()
    if back == data:
        stats["ok"] += 1
        stats["sent"] += n
    else:
        stats["bad"] += 1
        print(f"soak_peer: echo of {n} bytes came back different",
              file=sys.stderr, flush=True)


async def churner(port, gap, stop):
    loop = asyncio.get_running_loop()
    due = loop.time() + random.random() * gap
    while not stop.is_set():
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1:                # far behind: do not catch up in a burst
            due = loop.time()
        due += gap
        try:
            await churn_one(port)
        except (OSError, asyncio.IncompleteReadError) as e:
            stats["errors"] += 1
            print(f"soak_peer: connection to tide failed: {e!r}",
                  file=sys.stderr, flush=True)


async def main():
    port, rate, conc = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin),
                                 sys.stdin)
    stop = asyncio.Event()
    gap = conc / rate if rate > 0 else 0
    clients = [asyncio.create_task(churner(port, gap, stop))
               for _ in range(conc if rate > 0 else 0)]
    while True:
        line = await stdin.readline()
        if not line or line.strip() == b"stop":
            break
    stop.set()
    await asyncio.gather(*clients)
    server.close()
    await server.wait_closed()
    print("done", " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)


asyncio.run(main())
