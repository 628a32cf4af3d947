"""``python -m myelin`` is the ``myelin`` command."""

from myelin.cli import main

main()
