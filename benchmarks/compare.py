"""Myelin versus Synapse on this machine, one command: ``python benchmarks/compare.py``.

For each database engine and each round it starts a fresh Myelin (this checkout) and a fresh
Synapse 1.163 (from PyPI, in its own venv, installed on first use), configured alike (see
servers.py), and runs every scenario of the load tool against both, back to back, the order
alternating by round (round 1 Myelin then Synapse, round 2 Synapse then Myelin, ...), so
drift in the machine's load hurts neither side more. Servers live for a whole round: the
scenarios run in a fixed order on the same pair, which makes the peak RSS read after each
scenario the server's high-water mark so far, and the one after the last the figure for
the whole run. The bare aiohttp echo endpoint is measured once per round with the send loop.

Prints the median of each figure over the rounds with the ratio Myelin/Synapse, and writes
every raw result line plus the summary to benchmarks/results/<timestamp>.json.

    python benchmarks/compare.py [--engine sqlite|postgresql|both] [--rounds 3]
                                 [--scenarios send,messages] [--quick]

Without the project's dependencies importable it makes .bench/myelin-venv, installs the
project into it from this checkout and runs itself again there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NEEDED = ("aiohttp", "orjson", "yaml", "uvloop", "nacl", "signedjson", "canonicaljson",
          "cryptography", "asyncpg", "msgspec", "click")

# The order; state-res needs no server and runs once per round.
SCENARIOS = ["send", "sync-fanout", "initial-sync", "create-rooms", "messages", "register",
             "federation-ingest", "state-res"]

FULL: dict[str, list[str]] = {
    "send": ["--users", "20", "--messages", "50"],
    "sync-fanout": ["--receivers", "20", "--messages", "20"],
    "initial-sync": ["--rooms", "50", "--messages", "20"],
    "create-rooms": ["--rooms", "100", "--concurrency", "4"],
    "messages": ["--events", "5000", "--page-size", "100"],
    "register": ["--users", "100", "--concurrency", "8"],
    "federation-ingest": ["--pdus", "2000", "--batch", "50"],
    "state-res": ["--state", "10000", "--conflicted", "1000", "--repeat", "5"],
}
QUICK: dict[str, list[str]] = {
    "send": ["--users", "5", "--messages", "10"],
    "sync-fanout": ["--receivers", "3", "--messages", "5"],
    "initial-sync": ["--rooms", "5", "--messages", "5"],
    "create-rooms": ["--rooms", "10", "--concurrency", "2"],
    "messages": ["--events", "300", "--page-size", "100"],
    "register": ["--users", "10", "--concurrency", "4"],
    "federation-ingest": ["--pdus", "200", "--batch", "50"],
    "state-res": ["--state", "2000", "--conflicted", "200", "--repeat", "2"],
}


def ensure_environment() -> None:
    """Re-run under .bench/myelin-venv when this interpreter lacks the project's packages."""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in NEEDED):
        return
    venv = REPO / ".bench/myelin-venv"
    python = venv / "bin/python"
    if Path(sys.executable).resolve() == python.resolve():
        sys.exit("benchmarks: .bench/myelin-venv lacks packages even after installing")
    if not python.exists():
        print(f"installing the project into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                       check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{REPO}[test]"],
                       check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--synapse-python", help="interpreter with Synapse installed")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per scenario run")
    parser.add_argument("--output", type=Path, help="results file (default: "
                        "benchmarks/results/<timestamp>.json)")
    args = parser.parse_args()
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def load(scenario: str, sizes: list[str], base_url: str | None, pid: int | None,
         timeout: float) -> dict[str, Any]:
    """Run one scenario through the load tool's command line; return its JSON line."""
    command = [sys.executable, "-m", "benchmarks.load", scenario, *sizes]
    if base_url:
        command += ["--base-url", base_url]
    if pid:
        command += ["--server-pid", str(pid)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise RuntimeError(f"{scenario} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_echo(args: argparse.Namespace, sizes: dict[str, list[str]]) -> dict[str, Any]:
    """The bare aiohttp echo endpoint, driven by the send loop with the send sizes."""
    from benchmarks.servers import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.load.echo_server", "--port",
                               str(port)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        _wait_port(port)
        return load("echo", sizes["send"], f"http://127.0.0.1:{port}", server.pid, args.timeout)
    finally:
        server.terminate()
        server.wait()


def _wait_port(port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"echo server did not listen on {port}")


def run_round(args: argparse.Namespace, engine: str, round_no: int, synapse_py: str,
              sizes: dict[str, list[str]], work: Path) -> list[dict[str, Any]]:
    """One round on one engine: a fresh pair of servers, every scenario against both."""
    from benchmarks.servers import Server, start_myelin, start_synapse

    results: list[dict[str, Any]] = []
    servers: dict[str, Server] = {}
    try:
        servers["myelin"] = start_myelin(work / f"{engine}-{round_no}-myelin", engine)
        servers["synapse"] = start_synapse(work / f"{engine}-{round_no}-synapse", engine,
                                           synapse_py)
        order = ["myelin", "synapse"] if round_no % 2 == 1 else ["synapse", "myelin"]
        for scenario in args.scenario_list:
            targets = ["myelin"] if scenario == "state-res" else order
            for name in targets:
                server = servers[name] if scenario != "state-res" else None
                try:
                    result = load(scenario, sizes[scenario], server.url if server else None,
                                  server.pid if server else None, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    # Recorded and reported, and the run goes on: one failure must not
                    # throw away the other figures of a long run.
                    result = {"scenario": scenario, "error": str(e)[-2000:]}
                    if server is not None:
                        result["log_tail"] = server.log_tail(20)
                result.update(engine=engine, round=round_no, server=name)
                results.append(result)
                print(f"  {engine} round {round_no} {scenario:18} {name:8} "
                      f"{_headline(result)}", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return results


def _headline(result: dict[str, Any]) -> str:
    from benchmarks.report import FIGURES

    if "error" in result:
        return f"FAILED: {result['error'][-300:]}"
    keys = [f for s, f, _, _ in FIGURES if s == result["scenario"]] + ["rss_peak_mb"]
    return " ".join(f"{k}={result[k]}" for k in keys if k in result)


def main() -> None:
    ensure_environment()
    args = parse_args()
    from benchmarks import report
    from benchmarks.servers import synapse_python, synapse_version

    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    sizes = QUICK if args.quick else FULL
    started = datetime.datetime.now(datetime.UTC)
    meta: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"), "machine": report.machine(),
        "loadavg_start": report.loadavg(), "myelin": report.git_revision(REPO),
        "args": {"engine": args.engine, "rounds": args.rounds, "quick": args.quick,
                 "scenarios": args.scenario_list}, "sizes": sizes}
    synapse_py = synapse_python(args.synapse_python, "postgresql" in engines)
    meta["synapse_version"] = synapse_version(synapse_py)
    if "postgresql" in engines:
        meta["postgresql"] = report.postgres_version()
    print(f"Synapse {meta['synapse_version']} ({synapse_py}); engines {engines}; "
          f"{args.rounds} rounds; load average {meta['loadavg_start']}", file=sys.stderr)

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="myelin-bench-") as tmp:
        for round_no in range(1, args.rounds + 1):
            if "send" in args.scenario_list:
                echo = run_echo(args, sizes)
                echo.update(engine="-", round=round_no, server="echo")
                runs.append(echo)
                print(f"  echo round {round_no}: {echo['requests_per_s']} req/s",
                      file=sys.stderr)
            for engine in engines:
                runs += run_round(args, engine, round_no, synapse_py, sizes, Path(tmp))

    rows = report.summarise(runs, engines)
    rows += report.echo_rows(runs, rows)
    meta.update(finished=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                loadavg_end=report.loadavg(), summary=rows, runs=runs)
    output = args.output or REPO / "benchmarks/results" / (
        started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "") + ".json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(meta, indent=1) + "\n")
    print(report.table(rows))
    failures = [r for r in runs if "error" in r]
    for failure in failures:
        print(f"\nFAILED: {failure['engine']} round {failure['round']} {failure['scenario']} "
              f"on {failure['server']}: {failure['error'][-500:]}")
    print(f"\nload average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end; "
          f"results in {output}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
