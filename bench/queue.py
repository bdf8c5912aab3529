# Queues and locks under Python asyncio: N integers through an
# asyncio.Queue(1) and an asyncio.Queue(100) from a producer task to a
# consumer task; N uncontended asyncio.Lock acquire/release pairs in one
# task; N contended pairs shared by 4 tasks that each yield while holding
# the lock.
# Usage: python3 queue.py [N]   (default 1000000). Prints <metric>\t<value>.
import asyncio
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000


async def queue(size):
    q = asyncio.Queue(size)

    async def consumer():
        total = 0
        for _ in range(N):
            total += await q.get()
        return total

    t0 = time.perf_counter()
    c = asyncio.create_task(consumer())
    for i in range(1, N + 1):
        await q.put(i)
    assert await c == N * (N + 1) // 2
    return N / (time.perf_counter() - t0)


async def uncontended():
    lock = asyncio.Lock()
    t0 = time.perf_counter()
    for _ in range(N):
        await lock.acquire()
        lock.release()
    return N / (time.perf_counter() - t0)


async def contended():
    lock, each = asyncio.Lock(), N // 4

    async def worker():
        for _ in range(each):
            async with lock:
                await asyncio.sleep(0)  # the others queue up meanwhile

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    return 4 * each / (time.perf_counter() - t0)


async def main():
    print(f"queue1_items_per_s\t{await queue(1):.0f}")
    print(f"queue100_items_per_s\t{await queue(100):.0f}")
    print(f"lock_uncontended_per_s\t{await uncontended():.0f}")
    print(f"lock_contended_per_s\t{await contended():.0f}")


asyncio.run(main())
