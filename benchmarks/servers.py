"""Starting Myelin and Synapse alike, for benchmarks/compare.py.

Both get: a fresh data folder and a fresh database (SQLite file, or a new PostgreSQL database
on 127.0.0.1:5432 as user postgres, created with the C locale Synapse insists on and used the
same way by Myelin), a plain-HTTP listener on loopback serving the client and server-server
APIs, an IP-literal server name (``127.0.0.1:PORT``), open registration, every rate limit
off, bcrypt cost 4, presence on (both defaults), INFO logging to a file, and federation
allowed to loopback with unverified certificates (only federation-ingest needs that). Each
server is one process, so its pid is the one whose memory the load tool reads.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SYNAPSE_PIN = "matrix-synapse==1.163.*"
BCRYPT_ROUNDS = 4
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
UNLIMITED = {"per_second": 1_000_000, "burst_count": 1_000_000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_synapse(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import synapse"], capture_output=True)
    return probe.returncode == 0


def synapse_python(explicit: str | None, postgres: bool) -> str:
    """The interpreter with Synapse: --synapse-python, $MYELIN_SYNAPSE_PYTHON, the shared
    /work/synapse-venv, or .bench/synapse-venv (made and filled from PyPI when missing).
    With PostgreSQL it also needs psycopg2, installed on demand (a wheel: no compiler)."""
    candidates = [explicit, os.environ.get("MYELIN_SYNAPSE_PYTHON"),
                  "/work/synapse-venv/bin/python", str(REPO / ".bench/synapse-venv/bin/python")]
    python = next((c for c in candidates if c and Path(c).exists() and _has_synapse(c)), None)
    if python is None:
        venv = REPO / ".bench/synapse-venv"
        print(f"installing {SYNAPSE_PIN} into {venv} (a few minutes, once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin/python")
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                       check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", SYNAPSE_PIN], check=True)
    if postgres and subprocess.run([python, "-c", "import psycopg2"],
                                   capture_output=True).returncode != 0:
        print("installing psycopg2-binary for Synapse's PostgreSQL support", file=sys.stderr)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "psycopg2-binary>=2.9"],
                       check=True)
    return python


def synapse_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import synapse; print(synapse.__version__)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _psql(sql: str) -> None:
    subprocess.run(["psql", POSTGRES_ADMIN, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, capture_output=True)


def create_database() -> str:
    """A new, empty PostgreSQL database (UTF8, C collation, as Synapse requires)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    _psql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
          "LC_COLLATE 'C' LC_CTYPE 'C'")
    return name


def drop_database(name: str) -> None:
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Server:
    """One running homeserver process and what is needed to tear it down."""

    kind: str
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    database: str | None = None
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.database:
            drop_database(self.database)
        shutil.rmtree(self.folder, ignore_errors=True)


def _wait_ready(server: Server, timeout: float = 120) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.stop()
            raise RuntimeError(f"{server.kind} exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/_matrix/client/versions",
                                        timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.kind} did not become ready:\n{server.log_tail()}")


def start_myelin(folder: Path, engine: str) -> Server:
    """Myelin from this checkout (``python -m myelin`` with the repo first on the path)."""
    folder.mkdir(parents=True)
    port = free_port()
    database = create_database() if engine == "postgresql" else None
    db_arg = f"postgresql://postgres@127.0.0.1:5432/{database}" if database else "sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    config = folder / "homeserver.yaml"
    subprocess.run([sys.executable, "-m", "myelin", "generate-config", "--server-name",
                    f"127.0.0.1:{port}", "--listen", f"127.0.0.1:{port}", "--database", db_arg,
                    "--enable-registration", "--disable-rate-limits", "--insecure-federation",
                    "--output", str(config)], check=True, capture_output=True, env=env)
    raw = yaml.safe_load(config.read_text())
    raw["passwords"]["bcrypt_rounds"] = BCRYPT_ROUNDS
    config.write_text(yaml.safe_dump(raw))
    log = folder / "homeserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "myelin", "run", "--config",
                                    str(config)], cwd=folder, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    return _wait_ready(Server("myelin", folder, port, process, database, log))


def synapse_config(folder: Path, port: int, database: str | None) -> dict[str, Any]:
    """Synapse's homeserver.yaml: as tests/synapse_harness.py, but plain HTTP, every rc_*
    limit of Synapse 1.163 raised out of reach, and the engine under test."""
    if database:
        db: dict[str, Any] = {"name": "psycopg2", "args": {
            "user": "postgres", "database": database, "host": "127.0.0.1", "port": 5432,
            "cp_min": 5, "cp_max": 10}}
    else:
        db = {"name": "sqlite3", "args": {"database": str(folder / "homeserver.db")}}
    limits = {f"rc_{name}": UNLIMITED for name in (
        "message", "registration", "registration_token_validity", "joins_per_room",
        "key_requests", "3pid_validation", "third_party_invite", "media_create",
        "delayed_event_mgmt", "room_creation", "reports", "user_directory", "profile",
        "admin_redaction")}
    return {
        "server_name": f"127.0.0.1:{port}", "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(folder / "homeserver.pid"),
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http",
                       "tls": False, "x_forwarded": False,
                       "resources": [{"names": ["client", "federation"], "compress": False}]}],
        "database": db, "log_config": str(folder / "log.yaml"),
        "media_store_path": str(folder / "media"),
        "signing_key_path": str(folder / "signing.key"),
        "trusted_key_servers": [], "suppress_key_server_warning": True, "report_stats": False,
        "enable_registration": True, "enable_registration_without_verification": True,
        "bcrypt_rounds": BCRYPT_ROUNDS, "use_presence": True,
        "federation_verify_certificates": False,
        "ip_range_blacklist": ["10.0.0.0/8", "192.168.0.0/16", "169.254.0.0/16"],
        "federation_ip_range_blacklist": ["10.0.0.0/8", "192.168.0.0/16"],
        **limits,
        "rc_login": {"address": UNLIMITED, "account": UNLIMITED,
                     "failed_attempts": UNLIMITED},
        "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED},
        "rc_invites": {"per_room": UNLIMITED, "per_user": UNLIMITED, "per_issuer": UNLIMITED},
        "rc_presence": {"per_user": UNLIMITED},
        "rc_federation": {"window_size": 1000, "sleep_limit": 1_000_000, "sleep_delay": 0,
                          "reject_limit": 1_000_000, "concurrent": 1_000_000},
    }


def start_synapse(folder: Path, engine: str, python: str) -> Server:
    folder.mkdir(parents=True)
    port = free_port()
    database = create_database() if engine == "postgresql" else None
    log = folder / "homeserver.log"
    (folder / "log.yaml").write_text(yaml.safe_dump({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                              "filename": str(log)}},
        "root": {"level": "INFO", "handlers": ["file"]}}))
    config = folder / "homeserver.yaml"
    config.write_text(yaml.safe_dump(synapse_config(folder, port, database)))
    subprocess.run([python, "-m", "synapse.app.homeserver", "-c", str(config),
                    "--generate-keys"], check=True, capture_output=True, cwd=folder)
    with (folder / "stderr.log").open("wb") as err:
        process = subprocess.Popen([python, "-m", "synapse.app.homeserver", "-c", str(config)],
                                   cwd=folder, stdout=subprocess.DEVNULL, stderr=err)
    return _wait_ready(Server("synapse", folder, port, process, database, log))
