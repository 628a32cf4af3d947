"""Run the installed ``myelin`` command as a user would, in a subprocess."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def myelin_command() -> list[str]:
    """The console script installed next to this interpreter (what `pip install .` made)."""
    script = Path(sys.executable).parent / "myelin"
    if script.exists():
        return [str(script)]
    found = shutil.which("myelin")
    return [found] if found else [sys.executable, "-m", "myelin"]


def run_cli(*args: str, cwd: Path, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*myelin_command(), *args], cwd=cwd, input=input, text=True,
                          capture_output=True, timeout=timeout)


def generate_config(tmp_path: Path, *, port: int | None = None, bcrypt_rounds: int | None = None,
                    extra: tuple[str, ...] = (), name: str = "homeserver.yaml") -> Path:
    """`myelin generate-config` for example.test, optionally with a cheaper/dearer bcrypt."""
    import yaml

    config = tmp_path / name
    args = ["--server-name", "example.test", "--output", str(config), *extra]
    if port is not None:
        args += ["--listen", f"127.0.0.1:{port}"]
    result = run_cli("generate-config", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if bcrypt_rounds is not None:
        raw = yaml.safe_load(config.read_text())
        raw["passwords"]["bcrypt_rounds"] = bcrypt_rounds
        config.write_text(yaml.safe_dump(raw))
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def http_post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class ServerProcess:
    """`myelin run ...` in the background; waits until it answers /health."""

    def __init__(self, *args: str, cwd: Path, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen([*myelin_command(), "run", *args], cwd=cwd, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server did not become ready")

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return self.proc.returncode, out
