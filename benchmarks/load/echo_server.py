"""The bare aiohttp JSON echo endpoint: the ceiling for any server on this stack.

POST /echo decodes the JSON body and answers it back as JSON, on the same stack Myelin serves
with (aiohttp web, uvloop, orjson). The ``echo`` scenario drives it with the same loop as
``send``, so send throughput can be stated as a fraction of what the stack itself can serve.

    python -m benchmarks.load.echo_server --port 8090
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - as Myelin, fall back to asyncio's loop
        pass
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/health", lambda _request: _ok())
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


async def _ok() -> web.Response:
    return web.Response(text="OK")


if __name__ == "__main__":
    main()
