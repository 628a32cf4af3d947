"""Fixtures for the end-to-end tests that drive real Node.js Matrix clients (matrix-js-sdk).

``node`` installs the npm packages of ``js/`` once per lockfile; ``js_server`` runs a fresh
``myelin run`` the way a user would; ``run_node_script`` runs one of the ``js/*.mjs`` scripts,
which all print one JSON result line on stdout and keep to their own hard timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli_harness import ServerProcess, free_port, generate_config

JS_DIR = Path(__file__).parent / "e2e" / "js"
NODE_MODULES = JS_DIR / "node_modules"
INSTALL_STAMP = NODE_MODULES / ".myelin-install-stamp"
MIN_NODE_MAJOR = 20
NPM_TIMEOUT = 300


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(
            f"`{name}` is not on PATH: this end-to-end test needs Node.js >= {MIN_NODE_MAJOR} "
            f"and npm (install them, e.g. `apt-get install nodejs npm`); it is not skipped",
            pytrace=False,
        )
    return found


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = JS_DIR / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"-"))
    return digest.hexdigest()


@pytest.fixture(scope="session")
def node() -> str:
    """Path of `node`, with the npm packages installed (`npm ci`, once per lockfile)."""
    node = _tool("node")
    npm = _tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    major = int(version.stdout.strip().lstrip("v").split(".")[0] or 0)
    if major < MIN_NODE_MAJOR:
        pytest.fail(f"Node.js {version.stdout.strip()} is too old: need >= {MIN_NODE_MAJOR}",
                    pytrace=False)

    fingerprint = _install_fingerprint()
    stamped = INSTALL_STAMP.read_text() if INSTALL_STAMP.exists() else None
    if stamped != fingerprint or not (NODE_MODULES / "matrix-js-sdk" / "package.json").exists():
        locked = (JS_DIR / "package-lock.json").exists()
        command = [npm, "ci" if locked else "install", "--no-audit", "--no-fund",
                   "--ignore-scripts"]
        try:
            result = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True,
                                    timeout=NPM_TIMEOUT,
                                    env={**os.environ, "npm_config_update_notifier": "false"})
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command[1:])}` in {JS_DIR} took over {NPM_TIMEOUT} s",
                        pytrace=False)
        if result.returncode != 0:
            pytest.fail(f"`npm {' '.join(command[1:])}` in {JS_DIR} failed "
                        f"({result.returncode}):\n{result.stdout}\n{result.stderr}", pytrace=False)
        INSTALL_STAMP.write_text(_install_fingerprint())
    return node


@pytest.fixture
def js_server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    config = generate_config(tmp_path, port=port, bcrypt_rounds=4,
                             extra=("--enable-registration",))
    raw = yaml.safe_load(config.read_text())
    # The defaults (10 sends then one every 5 s; 3 /register requests, and each UIA round counts)
    # are for people: the client here registers two users and sends ~35 events in a second.
    raw["rate_limits"]["message"]["burst"] = 1000
    raw["rate_limits"]["registration"]["burst"] = 100
    raw.setdefault("logging", {})["access_log"] = True  # the server's side of a failure
    config.write_text(yaml.safe_dump(raw))

    proc = ServerProcess("--config", str(config), cwd=tmp_path, port=port)
    try:
        proc.wait_ready()
        yield proc
    finally:
        code, output = proc.stop()
        print(f"--- myelin run (exit {code}) ---\n{output[-20000:]}")


def run_node_script(node: str, script: Path, *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run ``script`` with ``args`` (which should pass ``--timeout``); its JSON report, with
    ``_exit`` and the tail of its stderr added."""
    command = [node, str(script), *args]
    try:
        result = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True,
                                timeout=timeout + 15)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the node script outlived its own hard timeout:\n{e.stderr}", pytrace=False)
    lines = result.stdout.strip().splitlines()
    assert lines, f"no result line (exit {result.returncode}); stderr:\n{result.stderr[-5000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    report["_exit"] = result.returncode
    report["_stderr"] = result.stderr[-5000:]
    return report
