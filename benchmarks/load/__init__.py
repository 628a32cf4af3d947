"""The load tool: Matrix scenarios over the standard client-server (and server-server) API.

    python -m benchmarks.load <scenario> --base-url URL [--server-pid PID] [options]

Each run prints one JSON line. Scenarios live one per module (send, sync_fanout, ...), each
with ``add_arguments(parser)`` and ``async run(http, args) -> dict``.
"""
