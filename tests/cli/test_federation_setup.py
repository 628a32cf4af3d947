"""The federation test set-up in one command: generate-config with --federation-listen,
--tls-cert/--tls-key and --insecure-federation, then `myelin run` serves the server-server API
over TLS under the name 127.0.0.1:PORT."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

import yaml

from cli_harness import ServerProcess, free_port, run_cli
from synapse_harness import self_signed_certificate


def test_generate_config_and_run_a_tls_federating_server(tmp_path: Path) -> None:
    client_port, federation_port = free_port(), free_port()
    cert, key = self_signed_certificate(tmp_path)
    config = tmp_path / "homeserver.yaml"
    result = run_cli("generate-config", "--server-name", f"127.0.0.1:{federation_port}",
                     "--listen", f"127.0.0.1:{client_port}",
                     "--federation-listen", f"127.0.0.1:{federation_port}",
                     "--tls-cert", str(cert), "--tls-key", str(key), "--insecure-federation",
                     "--disable-rate-limits", "--output", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load(config.read_text())
    assert written["federation"]["verify_certificates"] is False
    assert written["federation"]["allow_private_destinations"] is True
    assert written["rate_limits"]["enabled"] is False
    server = ServerProcess("--config", str(config), cwd=tmp_path, port=client_port)
    try:
        server.wait_ready()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(f"https://127.0.0.1:{federation_port}/_matrix/key/v2/server",
                                    context=context, timeout=10) as resp:
            keys = json.loads(resp.read())
        assert keys["server_name"] == f"127.0.0.1:{federation_port}"
        # Only the server-server side is served on the federation port.
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{federation_port}/_matrix/client/versions",
                                   context=context, timeout=10)
            raise AssertionError("the client API must not be served on the federation port")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert "INSECURE FEDERATION" in output


def test_tls_cert_without_key_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed_certificate(tmp_path)
    result = run_cli("generate-config", "--server-name", "example.test", "--tls-cert", str(cert),
                     "--output", str(tmp_path / "x.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "--tls-cert and --tls-key go together" in result.stderr
