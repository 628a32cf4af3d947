"""The one exception the authorization rules raise."""

from __future__ import annotations


class AuthError(Exception):
    """An event failed the authorization rules of its room version.

    ``rule`` is the spec's number of the rule that rejected it *in that room version*
    ("5.2.3" in v1, "4.3.3" in v8: rules are renumbered between versions), or a name for the
    few rejections the spec states outside the numbered list (e.g. "v1-floaty-power-levels").
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"rule {rule}: {message}")
        self.rule = rule
        self.message = message
