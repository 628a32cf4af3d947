"""The ``myelin`` command: run, generate-config, register-user, migrate. No logic of its own.

Scripts and tests drive the server with exactly these commands, so every failure an admin can
cause (bad config, missing key, taken user ID) ends with one clear line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from myelin.config import Config, ConfigError, load_config, new_config, render_config
from myelin.errors import MatrixError
from myelin.signing_key import SigningKeyError
from myelin.storage.database import DatabaseUnavailableError
from myelin.storage.migrations import SchemaTooNewError

DEFAULT_DATA_DIR = Path("myelin-data")
DEFAULT_CONFIG = DEFAULT_DATA_DIR / "homeserver.yaml"

T = TypeVar("T")

# Failures an admin can cause and fix; reported in one line, never as a traceback.
STARTUP_ERRORS = (SigningKeyError, SchemaTooNewError, DatabaseUnavailableError, OSError)


def _run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run on uvloop where available: it serves requests markedly faster than asyncio's loop."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is not available on Windows
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(make())  # type: ignore[arg-type]


def _fail(message: str) -> None:
    click.echo(f"myelin: {message}", err=True)
    sys.exit(1)


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        _fail(str(e))
        raise  # unreachable; keeps type checkers content


@click.group()
@click.version_option(package_name="myelin")
def main() -> None:
    """Myelin, a Matrix homeserver."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help=f"Config file (default: {DEFAULT_CONFIG}, written on first run).")
def run(config_path: Path | None) -> None:
    """Run the homeserver until SIGTERM or Ctrl-C."""
    from myelin.logs import setup_logging
    from myelin.server import serve_until_signalled

    if config_path is None:
        config_path = DEFAULT_CONFIG
        if not config_path.exists():
            config = new_config(server_name="localhost:8008", listen="127.0.0.1:8008")
            config_path.parent.mkdir(parents=True, exist_ok=True)
            config_path.write_text(render_config(config), encoding="utf-8")
            click.echo(f"Wrote a new configuration to {config_path.resolve()}; edit it and "
                       "restart to change settings.")
    config = _load(config_path)
    setup_logging(config.logging)
    try:
        _run_async(lambda: serve_until_signalled(config))
    except STARTUP_ERRORS as e:
        _fail(str(e))


@main.command("generate-config")
@click.option("--server-name", required=True, help="Domain of user IDs, e.g. example.org.")
@click.option("--data-dir", default=".", show_default=True,
              help="Folder for database, media and key, relative to the config file.")
@click.option("--listen", default="127.0.0.1:8008", show_default=True, metavar="HOST:PORT")
@click.option("--database", default="sqlite", show_default=True,
              metavar="sqlite|postgresql://DSN")
@click.option("--enable-registration", is_flag=True, help="Let anyone register an account.")
@click.option("--federation-listen", metavar="HOST:PORT",
              help="Serve the server-server API on its own listener (TLS with --tls-cert).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate chain for the federation listener.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key for the federation listener.")
@click.option("--insecure-federation", is_flag=True,
              help="TEST SETUPS ONLY: accept self-signed certificates and federate with "
                   "private and loopback addresses.")
@click.option("--disable-rate-limits", is_flag=True,
              help="Turn every rate limit off (benchmarks and load tests, never production).")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Where to write the config file (not overwritten if it exists).")
def generate_config(server_name: str, data_dir: str, listen: str, database: str,
                    enable_registration: bool, federation_listen: str | None,
                    tls_cert: str | None, tls_key: str | None, insecure_federation: bool,
                    disable_rate_limits: bool, output: Path) -> None:
    """Write a commented homeserver.yaml."""
    try:
        config = new_config(server_name=server_name, data_dir=data_dir, listen=listen,
                            database=database, enable_registration=enable_registration,
                            federation_listen=federation_listen, tls_cert=tls_cert,
                            tls_key=tls_key, insecure_federation=insecure_federation,
                            disable_rate_limits=disable_rate_limits)
    except ConfigError as e:
        _fail(str(e))
        return
    if output.exists():
        _fail(f"{output} already exists; not overwriting it")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_config(config), encoding="utf-8")
    click.echo(f"Wrote {output}")


@main.command("register-user")
@click.argument("user")
@click.option("--password", help="Password (prompted for if omitted).")
@click.option("--admin", is_flag=True, help="Make the user a server admin.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=DEFAULT_CONFIG, show_default=True)
def register_user(user: str, password: str | None, admin: bool, config_path: Path) -> None:
    """Create a local account USER (a localpart such as alice, or @alice:server)."""
    config = _load(config_path)
    localpart = user
    if user.startswith("@"):
        localpart, _, domain = user[1:].partition(":")
        if domain != config.server_name:
            _fail(f"{user} is not on this server ({config.server_name})")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def register() -> str:
        from myelin.app import build_services

        services = await build_services(config)
        try:
            return await services.auth.register(localpart, password, admin=admin)
        finally:
            await services.db.close()

    try:
        user_id = _run_async(register)
    except MatrixError as e:
        _fail(f"{e.errcode}: {e.message}")
        return
    except STARTUP_ERRORS as e:
        _fail(str(e))
        return
    click.echo(f"Registered {user_id}{' (admin)' if admin else ''}")


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=DEFAULT_CONFIG, show_default=True)
def migrate(config_path: Path) -> None:
    """Bring the database schema up to date and exit."""
    from myelin.storage.migrations import migrate as apply_migrations
    from myelin.storage.migrations import schema_version

    config = _load(config_path)

    async def apply() -> tuple[list[int], int]:
        from myelin.app import connect

        db = await connect(config)
        try:
            return await apply_migrations(db), await schema_version(db)
        finally:
            await db.close()

    try:
        applied, version = _run_async(apply)
    except STARTUP_ERRORS as e:
        _fail(str(e))
        return
    if applied:
        click.echo(f"Applied migrations {', '.join(map(str, applied))}")
    click.echo(f"Database schema is at version {version}")


@main.command("purge-media")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=DEFAULT_CONFIG, show_default=True)
@click.option("--local-days", type=float, default=None,
              help="Delete local media not downloaded for this many days "
                   "(default: media.local_retention_days; 0 keeps it).")
@click.option("--remote-days", type=float, default=None,
              help="Delete cached remote media not downloaded for this many days "
                   "(default: media.remote_retention_days; 0 keeps it).")
def purge_media(config_path: Path, local_days: float | None, remote_days: float | None) -> None:
    """Delete expired media reservations and media past its retention, then exit."""
    config = _load(config_path)

    async def purge() -> dict[str, int]:
        from myelin.app import open_database
        from myelin.services.media.blobs import FileBlobStore
        from myelin.services.media.retention import MediaRetention
        from myelin.storage.stores.media import MediaStore

        db = await open_database(config)
        try:
            retention = MediaRetention(MediaStore(db),
                                       FileBlobStore(config.resolve(config.media_store_path)),
                                       config.media, config.server_name)
            report = await retention.purge(local_days=local_days, remote_days=remote_days)
            return report.as_dict()
        finally:
            await db.close()

    if (local_days is not None and local_days < 0) or (remote_days is not None and remote_days < 0):
        _fail("--local-days and --remote-days must be >= 0")
        return
    try:
        report = _run_async(purge)
    except STARTUP_ERRORS as e:
        _fail(str(e))
        return
    click.echo("Purged: " + ", ".join(f"{key.replace('_', ' ')} {value}"
                                      for key, value in report.items()))
