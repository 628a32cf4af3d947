"""A real Synapse on loopback, for the federation interop suite (marker ``federation``).

Synapse comes from PyPI into its own virtualenv (``.ci/run`` makes it; set MYELIN_SYNAPSE_PYTHON
to use another). Each test server gets a fresh data folder, a self-signed certificate for its
IP-literal server name (``127.0.0.1:PORT``: no .well-known, SRV or SNI), and the settings the
interop notes of the federation issue call for: certificates not verified, loopback reachable,
short federation retry back-off, rate limits off, open registration.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SYNAPSE_PYTHON = "/work/synapse-venv/bin/python"
SHARED_SECRET = "myelin-interop-secret"


def synapse_python() -> str | None:
    """The interpreter that has Synapse installed, or None if there is none."""
    candidate = os.environ.get("MYELIN_SYNAPSE_PYTHON", DEFAULT_SYNAPSE_PYTHON)
    if not Path(candidate).exists():
        found = shutil.which(candidate)
        if found is None:
            return None
        candidate = found
    probe = subprocess.run([candidate, "-c", "import synapse"], capture_output=True)
    return candidate if probe.returncode == 0 else None


def self_signed_certificate(folder: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for an IP-literal server name (subjectAltName IP), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def synapse_config(folder: Path, port: int, cert: Path, key: Path) -> dict[str, Any]:
    server_name = f"127.0.0.1:{port}"
    unlimited = {"per_second": 10_000, "burst_count": 10_000}
    return {
        "server_name": server_name,
        "public_baseurl": f"https://{server_name}/",
        "pid_file": str(folder / "homeserver.pid"),
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http",
                       "tls": True, "x_forwarded": False,
                       "resources": [{"names": ["client", "federation"], "compress": False}]}],
        "tls_certificate_path": str(cert),
        "tls_private_key_path": str(key),
        "database": {"name": "sqlite3", "args": {"database": str(folder / "homeserver.db")}},
        "log_config": str(folder / "log.yaml"),
        "media_store_path": str(folder / "media"),
        "signing_key_path": str(folder / "signing.key"),
        "trusted_key_servers": [],
        "report_stats": False,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "registration_shared_secret": SHARED_SECRET,
        "bcrypt_rounds": 4,
        "federation_verify_certificates": False,
        # Synapse checks IP-literal destinations against the blacklist without the whitelist:
        # a list without 127.0.0.0/8 lets it reach us on loopback.
        "ip_range_blacklist": ["10.0.0.0/8", "192.168.0.0/16", "169.254.0.0/16"],
        "federation_ip_range_blacklist": ["10.0.0.0/8", "192.168.0.0/16"],
        "federation": {"client_timeout": "30s", "max_short_retry_delay": "2s",
                       "max_long_retry_delay": "10s", "max_short_retries": 3,
                       "max_long_retries": 3, "destination_min_retry_interval": "1s",
                       "destination_retry_multiplier": 1.5,
                       "destination_max_retry_interval": "5s"},
        "room_list_publication_rules": [{"action": "allow"}],
        "allow_public_rooms_over_federation": True,
        "allow_public_rooms_without_auth": True,
        "rc_message": unlimited, "rc_registration": unlimited, "rc_joins": {
            "local": unlimited, "remote": unlimited},
        "rc_login": {"address": unlimited, "account": unlimited,
                     "failed_attempts": unlimited},
        "rc_invites": {"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
        "rc_federation": {"window_size": 1000, "sleep_limit": 1000, "sleep_delay": 0,
                          "reject_limit": 10_000, "concurrent": 100},
        "rc_joins_per_room": unlimited,
        "rc_presence": {"per_user": unlimited},
        "use_presence": True,
        "suppress_key_server_warning": True,
        "enable_media_repo": True,
        "url_preview_enabled": False,
        "experimental_features": {},
    }


LOG_CONFIG = {
    "version": 1,
    "formatters": {"precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                          "filename": "PLACEHOLDER"}},
    "root": {"level": "INFO", "handlers": ["file"]},
    "disable_existing_loggers": False,
}


@dataclass
class SynapseServer:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        log = self.folder / "homeserver.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_synapse(folder: Path, port: int, python: str) -> SynapseServer:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(folder)
    log_config = dict(LOG_CONFIG)
    log_config["handlers"] = {"file": {**LOG_CONFIG["handlers"]["file"],  # type: ignore[index]
                                       "filename": str(folder / "homeserver.log")}}
    (folder / "log.yaml").write_text(yaml.safe_dump(log_config))
    config_path = folder / "homeserver.yaml"
    config_path.write_text(yaml.safe_dump(synapse_config(folder, port, cert, key)))
    subprocess.run([python, "-m", "synapse.app.homeserver", "-c", str(config_path),
                    "--generate-keys"], check=True, capture_output=True, cwd=folder)
    process = subprocess.Popen([python, "-m", "synapse.app.homeserver", "-c", str(config_path)],
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = SynapseServer(folder, port, process)
    _wait_ready(server)
    return server


def _wait_ready(server: SynapseServer, timeout: float = 90) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            stderr = server.process.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
            raise RuntimeError(f"Synapse exited early:\n{stderr}\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/health", context=context,
                                        timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"Synapse did not become ready:\n{server.log_tail()}")
