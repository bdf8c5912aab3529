# Echo server under Python asyncio with a Protocol (callbacks, no streams):
# data_received writes each chunk back; reading pauses while the transport
# says its write buffer is full.
# Usage: python3 echo_server_protocol.py; prints "port\t<n>" once listening.
import asyncio


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    print(f"port\t{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


asyncio.run(main())
