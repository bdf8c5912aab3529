# Subprocesses under Python asyncio: spawn `true` N times (1,000), 50 at a
# time, with asyncio.create_subprocess_exec, waiting for every exit; then
# MIB MiB (100) through `cat`, written and read at once over its pipes.
# Usage: python3 bench/process.py [N [MIB]]. Prints spawn1000_s and
# cat100m_mb_per_s (MB = 10^6 bytes).
import asyncio
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 100


async def spawner(first):
    for _ in range(first, N + 1, 50):
        p = await asyncio.create_subprocess_exec("true")
        assert await p.wait() == 0


async def cat():
    chunk = b"x" * (64 * 1024)
    total = MIB * 1024 * 1024
    p = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

    async def writer():
        for _ in range(total // len(chunk)):
            p.stdin.write(chunk)
            await p.stdin.drain()
        p.stdin.close()

    async def reader():
        got = 0
        while True:
            data = await p.stdout.read(64 * 1024)
            if not data:
                return got
            got += len(data)

    _, got = await asyncio.gather(writer(), reader())
    assert got == total and await p.wait() == 0


async def main():
    t0 = time.perf_counter()
    await asyncio.gather(*(spawner(i) for i in range(1, 51)))
    print(f"spawn1000_s\t{time.perf_counter() - t0:.3f}")
    t0 = time.perf_counter()
    await cat()
    mb = MIB * 1024 * 1024 / 1e6
    print(f"cat100m_mb_per_s\t{mb / (time.perf_counter() - t0):.1f}")


asyncio.run(main())
