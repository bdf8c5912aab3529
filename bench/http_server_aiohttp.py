# http_server_aiohttp.py: python3 aiohttp's web server answering 13 bytes,
# for wrk (bench/run.sh's http_server section); idle connections kept 60 s.
#   python3 bench/http_server_aiohttp.py PORT
import sys
from aiohttp import web


async def hello(request):
    return web.Response(text="Hello, World!")


app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None,
            access_log=None, keepalive_timeout=60)
