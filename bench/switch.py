# Switch cost under Python asyncio: two tasks take turns through
# asyncio.sleep(0) for ROUNDS rounds (two switches each).
# Usage: python3 switch.py ROUNDS. Prints switches per second.
import asyncio
import sys
import time


async def player(rounds):
    for _ in range(rounds):
        await asyncio.sleep(0)


async def main(rounds):
    t0 = time.perf_counter()
    await asyncio.gather(player(rounds), player(rounds))
    s = time.perf_counter() - t0
    print(f"switch_per_s\t{2 * rounds / s:.0f}")


asyncio.run(main(int(sys.argv[1])))
