# Tasks under Python asyncio: N tasks, each awaiting asyncio.sleep(0.1), then
# awaited all. Usage: python3 tasks.py N
import asyncio
import sys
import time


async def main(n):
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(asyncio.sleep(0.1)) for _ in range(n)]
    for t in tasks:
        await t
    print(f"tasks_wall_s\t{time.perf_counter() - t0:.4f}")


asyncio.run(main(int(sys.argv[1])))
