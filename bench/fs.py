# Files under Python asyncio (asyncio.to_thread on the default executor):
# read N small files (10,000 of 1 KiB), 64 at a time, each read whole in a
# thread; then read one MIB MiB file (256) from start to end in 1 MiB reads,
# each in a thread. The files are made in DIR (default
# $TMPDIR/tide-bench-fs) on the first run and shared with bench/fs.lua,
# bench/fs_luv.lua and bench/fs.js.
# Usage: python3 bench/fs.py [DIR [N [MIB]]]. Prints small_files_per_s and
# bigfile_mb_per_s (MB = 10^6 bytes).
import os
import sys

# bench/ holds queue.py, which would hide the standard module asyncio needs.
sys.path = [p for p in sys.path
            if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import asyncio  # noqa: E402
import time  # noqa: E402

DIR = sys.argv[1] if len(sys.argv) > 1 else \
    os.environ.get("TMPDIR", "/tmp") + "/tide-bench-fs"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
MIB = int(sys.argv[3]) if len(sys.argv) > 3 else 256


def setup():
    ready = f"{DIR}/ready-{N}-{MIB}"
    if os.path.exists(ready):
        return
    os.makedirs(f"{DIR}/small", exist_ok=True)
    body = b"0123456789abcdef" * 64
    for i in range(N):
        with open(f"{DIR}/small/{i}", "wb") as f:
            f.write(body)
    block = b"tide bench data\n" * 65536
    with open(f"{DIR}/big", "wb") as f:
        for _ in range(MIB):
            f.write(block)
    open(ready, "w").close()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


async def main():
    setup()
    state = {"next": 0, "bytes": 0}

    async def reader():
        while state["next"] < N:
            i = state["next"]
            state["next"] = i + 1
            data = await asyncio.to_thread(read_file, f"{DIR}/small/{i}")
            state["bytes"] += len(data)

    t0 = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(64)))
    assert state["bytes"] == N * 1024
    print(f"small_files_per_s\t{N / (time.perf_counter() - t0):.0f}")

    t0 = time.perf_counter()
    total = 0
    f = await asyncio.to_thread(open, f"{DIR}/big", "rb", buffering=0)
    while True:
        data = await asyncio.to_thread(f.read, 1024 * 1024)
        if not data:
            break
        total += len(data)
    await asyncio.to_thread(f.close)
    assert total == MIB * 1024 * 1024
    mb = total / 1e6
    print(f"bigfile_mb_per_s\t{mb / (time.perf_counter() - t0):.1f}")


asyncio.run(main())
