# http_client_aiohttp.py URL N CONC: N GETs of URL by CONC asyncio tasks at
# once, each task's requests one after the other, through one aiohttp
# ClientSession whose connector keeps CONC connections alive (so CONC
# connections, reused); prints requests/s, as bench/http_client.lua does.
#   python3 bench/http_client_aiohttp.py URL N CONC
import asyncio
import sys
import time

import aiohttp


async def worker(session, url, count):
    got = 0
    for _ in range(count):
        async with session.get(url) as res:
            body = await res.read()
            if res.status != 200:
                raise RuntimeError("status %d" % res.status)
            got += len(body)
    return got


async def main(url, n, conc):
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as res:    # a first connection
            await res.read()
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, url, n // conc + (1 if i < n % conc else 0))
                               for i in range(conc)))
        s = time.perf_counter() - start
    print("http_client_per_s\t%.0f" % (n / s))
    print("http_client_wall_s\t%.3f" % s)


if __name__ == "__main__":
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    asyncio.run(main(url, n, conc))
