# Echo server under Python asyncio streams: a task per connection reads what
# is there (up to 64 KiB), writes it back and awaits drain.
# Usage: python3 echo_server.py; prints "port\t<n>" once listening.
import asyncio


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    print(f"port\t{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


asyncio.run(main())
