"""Prometheus metrics, served on their own opt-in listener.

A private registry per server instance (not prometheus-client's global one) keeps two servers
in one process, as in the test suite, from colliding.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Memory and CPU of the process: what admins compare against Synapse first.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._requests = Counter(
            "myelin_http_requests", "HTTP requests answered, by endpoint, method and status",
            ["endpoint", "method", "status"], registry=self.registry,
        )
        self._duration = Histogram(
            "myelin_http_request_duration_seconds", "Time to answer an HTTP request",
            ["endpoint"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self._requests.labels(endpoint, method, str(status)).inc()
        self._duration.labels(endpoint).observe(seconds)

    def make_app(self) -> web.Application:
        async def serve(_: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", serve)
        return app
