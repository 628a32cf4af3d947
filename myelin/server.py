"""Running a homeserver: its HTTP listeners (client, metrics, TLS federation), start-up and an
orderly shutdown on SIGTERM/SIGINT. What the server is made of is ``myelin.app``'s business.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from myelin.api.http.dispatch import Dispatcher
from myelin.api.http.endpoint import Endpoint
from myelin.api.http.metrics import HttpMetrics
from myelin.api.registry import all_endpoints, federation_endpoints
from myelin.app import Services, build_services
from myelin.config import Config
from myelin.gc_tuning import tune_for_server

log = logging.getLogger("myelin")


class Homeserver:
    """A running server: its services, its HTTP listeners, and an orderly shutdown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.services: Services | None = None
        self._runners: list[web.BaseRunner] = []
        self.port: int | None = None
        self.federation_port: int | None = None
        self.metrics_port: int | None = None

    def _make_server(self, services: Services, metrics: HttpMetrics | None,
                     endpoints: list[Endpoint]) -> web.Server:
        config = self.config
        dispatcher = Dispatcher(
            endpoints, services,
            rate_limiter=services.rate_limiter,
            max_body_bytes=config.listen.max_json_body_bytes,
            trust_x_forwarded=config.listen.x_forwarded,
            log_access=config.logging.access_log,
            metrics=metrics,
        )
        # aiohttp's low-level server: our router replaces aiohttp's, and skipping its
        # Application layer (router, middlewares, signals) cut ~15% of per-request CPU.
        # access_log=None here, not on the runner (a ServerRunner ignores it): the dispatcher
        # writes the one access log line, with the request ID and user.
        return web.Server(dispatcher.handle, access_log=None)

    async def start(self) -> None:
        config = self.config
        self.services = await build_services(config)
        self.services.presence.start()
        if removed := self.services.media.blobs.clear_staging():
            log.info("removed %d partial uploads left by an earlier run", removed)
        self.services.media_retention.start()
        await self.services.planner_statistics.start()
        metrics = HttpMetrics() if config.metrics.enabled else None
        grace = config.listen.shutdown_grace_seconds
        try:
            await self.services.push_delivery.start()
            if config.federation.enabled:
                await self.services.federation_sender.start()
            runner: web.BaseRunner = web.ServerRunner(
                self._make_server(self.services, metrics, served_endpoints(config)),
                access_log=None,
                handle_signals=False, shutdown_timeout=grace,
            )
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, config.listen.host, config.listen.port)
            await site.start()
            self.port = _bound_port(runner)
            if config.federation.enabled and config.federation.listen:
                await self._start_federation_listener(self.services, metrics)
            if metrics is not None:
                metrics_runner = web.AppRunner(metrics.make_app(), access_log=None,
                                               handle_signals=False)
                await metrics_runner.setup()
                self._runners.append(metrics_runner)
                await web.TCPSite(metrics_runner, config.metrics.host, config.metrics.port).start()
                self.metrics_port = _bound_port(metrics_runner)
        except BaseException:
            await self.stop()
            raise

    async def _start_federation_listener(self, services: Services,
                                         metrics: HttpMetrics | None) -> None:
        federation = self.config.federation
        if not federation.verify_certificates or federation.allow_private_destinations:
            log.warning("INSECURE FEDERATION: %s%s - for test setups only",
                        "other servers' TLS certificates are NOT verified; "
                        if not federation.verify_certificates else "",
                        "private and loopback destinations are allowed"
                        if federation.allow_private_destinations else "")
        runner = web.ServerRunner(
            self._make_server(services, metrics, federation_endpoints()), access_log=None,
            handle_signals=False, shutdown_timeout=self.config.listen.shutdown_grace_seconds)
        await runner.setup()
        self._runners.append(runner)
        host, _, port = federation.listen.rpartition(":")
        await web.TCPSite(runner, host.strip("[]"), int(port),
                          ssl_context=federation_tls_context(self.config)).start()
        self.federation_port = _bound_port(runner)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period), close the DB."""
        if self.services is not None:
            self.services.notifier.wake_all()  # long-polls answer now, not at their timeout
            self.services.typing.close()
            await self.services.presence.stop()
            await self.services.media_retention.stop()
            await self.services.planner_statistics.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.services is not None:
            await self.services.push_delivery.stop()
            await self.services.media.close()
            await self.services.url_previews.close()
            await self.services.room_distributor.drain()
            await self.services.edu_relay.drain()
            await self.services.federation_sender.stop()
            await self.services.e2e_keys.close()
            await self.services.federation_client.close()
            await self.services.db.close()
            self.services = None


def served_endpoints(config: Config) -> list[Endpoint]:
    """The main listener serves everything, federation included (as Synapse does, for set-ups
    behind a TLS-terminating proxy), unless federation is switched off."""
    if config.federation.enabled:
        return all_endpoints()
    federation = {id(e) for e in federation_endpoints() if e.paths[0] != "/health"}
    return [e for e in all_endpoints() if id(e) not in federation]


def federation_tls_context(config: Config) -> ssl.SSLContext | None:
    """The federation listener's TLS set-up; None (plain HTTP) without a certificate."""
    federation = config.federation
    if not federation.tls_certificate_path:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.resolve(federation.tls_certificate_path),
                            config.resolve(federation.tls_private_key_path))
    return context


def _bound_port(runner: web.BaseRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("listener has no TCP address")


async def serve_until_signalled(config: Config, announce: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = Homeserver(config)
    await server.start()
    tune_for_server()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if announce:
        host = config.listen.host if ":" not in config.listen.host else f"[{config.listen.host}]"
        log.info("Myelin %s listening on http://%s:%d (server name %s)", _version(), host,
                 server.port, config.server_name)
        if server.metrics_port is not None:
            log.info("metrics on http://%s:%d/metrics", config.metrics.host, server.metrics_port)
    try:
        await stop.wait()
        log.info("shutting down: finishing in-flight requests")
        await server.stop()
        log.info("stopped")
    finally:
        # Removed only now: a second signal during shutdown must not kill the process halfway
        # through closing the database.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()


def _version() -> str:
    from myelin import __version__

    return __version__
