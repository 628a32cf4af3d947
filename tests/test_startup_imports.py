"""What a server loads at start-up: heavy optional libraries wait for their first use.

Pillow with its plugins (~6 MiB resident) is loaded by the first thumbnail or preview, and
dnspython (~3 MiB) by the first SRV lookup, so a server that never does either never pays
for them. A top-level import sneaking back in would undo that silently; this catches it.
"""

from __future__ import annotations

import subprocess
import sys

LAZY = ("PIL", "dns", "asyncpg")


def test_heavy_optional_libraries_are_not_loaded_at_start() -> None:
    script = (
        "import sys\n"
        "import myelin.app, myelin.server, myelin.cli, myelin.api.registry\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({LAZY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout
