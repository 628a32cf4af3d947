"""Summaries for benchmarks/compare.py: machine facts, medians, ratios, the printed table.

Every figure is the median over rounds of one server's per-round value; the ratio is always
Myelin / Synapse, with the direction that is better stated beside it, so a reader never has
to guess whether 0.2 is good (it is for a delay, it is not for a throughput).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

# (scenario, figure, unit, better): the headline figures of each scenario.
FIGURES: list[tuple[str, str, str, str]] = [
    ("send", "events_per_s", "events/s", "higher"),
    ("send", "latency_p50_ms", "ms", "lower"),
    ("send", "latency_p99_ms", "ms", "lower"),
    ("sync-fanout", "delay_p50_ms", "ms", "lower"),
    ("sync-fanout", "delay_p99_ms", "ms", "lower"),
    ("sync-fanout", "delay_from_request_p50_ms", "ms", "lower"),
    ("initial-sync", "seconds", "s", "lower"),
    ("initial-sync", "bytes", "bytes", "-"),
    ("create-rooms", "rooms_per_s", "rooms/s", "higher"),
    ("messages", "events_per_s", "events/s", "higher"),
    ("register", "users_per_s", "users/s", "higher"),
    ("federation-ingest", "pdus_per_s", "PDUs/s", "higher"),
    ("state-res", "v2_median_s", "s", "lower"),
    ("state-res", "v2.1_median_s", "s", "lower"),
]
SERVERS = ("myelin", "synapse")


def machine() -> dict[str, Any]:
    """What the numbers were measured on (CPU, cores, memory, kernel, Python)."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory_gib": round(mem_kb / 1024**2, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def postgres_version() -> str | None:
    try:
        out = subprocess.run(["psql", "postgresql://postgres@127.0.0.1:5432/postgres", "-tAc",
                              "SHOW server_version"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def git_revision(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarise(runs: list[dict[str, Any]], engines: list[str]) -> list[dict[str, Any]]:
    """One row per (engine, scenario, figure) and per (engine, scenario) peak RSS."""
    rows: list[dict[str, Any]] = []
    runs = [r for r in runs if "error" not in r]
    scenarios = list(dict.fromkeys(r["scenario"] for r in runs if r["scenario"] != "echo"))
    figures = FIGURES + [(s, "rss_peak_mb", "MiB", "lower") for s in scenarios
                         if s != "state-res"]
    order = {s: i for i, s in enumerate(scenarios)}
    figures = sorted((f for f in figures if f[0] in order), key=lambda f: order[f[0]])
    for engine in engines:
        for scenario, figure, unit, better in figures:
            values = {server: [r[figure] for r in runs if r["engine"] == engine
                               and r["server"] == server and r["scenario"] == scenario
                               and figure in r] for server in SERVERS}
            if not any(values.values()):
                continue
            m, s = median(values["myelin"]), median(values["synapse"])
            rows.append({"engine": engine, "scenario": scenario, "figure": figure,
                         "unit": unit, "better": better, "myelin": m, "synapse": s,
                         "ratio": round(m / s, 3) if m is not None and s else None,
                         "rounds": max(len(v) for v in values.values())})
        rows += _whole_run(runs, engine)
    return rows


def _whole_run(runs: list[dict[str, Any]], engine: str) -> list[dict[str, Any]]:
    """Peak RSS over a whole round (servers live for one round), median over rounds."""
    peaks: dict[str, list[float]] = {server: [] for server in SERVERS}
    for server in SERVERS:
        by_round: dict[int, float] = {}
        for r in runs:
            if r["engine"] == engine and r["server"] == server and "rss_peak_mb" in r:
                by_round[r["round"]] = max(by_round.get(r["round"], 0.0), r["rss_peak_mb"])
        peaks[server] = list(by_round.values())
    if not peaks["myelin"] or not peaks["synapse"]:
        return []
    m, s = median(peaks["myelin"]), median(peaks["synapse"])
    return [{"engine": engine, "scenario": "whole run", "figure": "rss_peak_mb",
             "unit": "MiB", "better": "lower", "myelin": m, "synapse": s,
             "ratio": round(m / s, 3) if m is not None and s else None,
             "rounds": len(peaks["myelin"])}]


def echo_rows(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bare echo endpoint's throughput, and send throughput as a fraction of it."""
    echo = median([r["requests_per_s"] for r in runs if r["scenario"] == "echo"])
    if echo is None:
        return []
    out = [{"engine": "-", "scenario": "echo", "figure": "requests_per_s", "unit": "req/s",
            "better": "higher", "myelin": echo, "synapse": None, "ratio": None,
            "rounds": sum(1 for r in runs if r["scenario"] == "echo")}]
    for row in rows:
        if row["scenario"] == "send" and row["figure"] == "events_per_s":
            out.append({**row, "scenario": "send / echo", "figure": "fraction_of_echo",
                        "unit": "", "better": "higher",
                        "myelin": _frac(row["myelin"], echo),
                        "synapse": _frac(row["synapse"], echo), "ratio": row["ratio"]})
    return out


def _frac(value: float | None, echo: float) -> float | None:
    return None if value is None else round(value / echo, 3)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table (it reads fine in a terminal and pastes into docs/performance.md)."""
    lines = ["| engine | scenario | figure | Myelin | Synapse | Myelin/Synapse | better |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        unit = f" ({r['unit']})" if r["unit"] else ""
        lines.append(f"| {r['engine']} | {r['scenario']} | {r['figure']}{unit} | "
                     f"{_fmt(r['myelin'])} | {_fmt(r['synapse'])} | {_fmt(r['ratio'])} | "
                     f"{r['better']} |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
