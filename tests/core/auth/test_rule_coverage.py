"""The rule-coverage map: every numbered authorization rule of every room version has a test.

``SPEC_RULES_TEXT`` lists the rule numbers of each room version as the rendered spec prints
them (Markdown numbers a list from its first item on, so v12's items written "5." under rule 3
and the second "10." under rule 10 are 3.4 and 10.11). When the spec is at hand
(``MYELIN_SPEC_DIR``, default /work/shared/spec) the table is re-derived from its markdown.

A test covers rule N of version V when one of its pytest ids contains ``vV-rule-N`` (see
tests/auth_scenarios.py ``rule_cases``) or its name is ``test_vV_rule_N_...`` with N's dots
written as underscores. Every leaf rule must be covered; a rule with sub-rules is covered
through them. ``python tests/core/auth/test_rule_coverage.py`` prints the map.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from myelin.core.auth.rules import numbering
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS

SPEC_RULES_TEXT = {
    "1-2": """
        1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.3 5 5.1 5.2 5.2.1 5.2.2 5.2.3
        5.2.4 5.2.5 5.2.6 5.3 5.3.1 5.3.1.1 5.3.1.2 5.3.1.3 5.3.1.4 5.3.1.5 5.3.1.6 5.3.1.7
        5.3.1.7.1 5.3.1.7.2 5.3.1.8 5.3.2 5.3.3 5.3.4 5.3.5 5.4 5.4.1 5.4.2 5.4.3 5.4.4 5.4.5
        5.5 5.5.1 5.5.2 5.5.3 5.6 6 7 7.1 8 9 10 10.1 10.2 10.3 10.3.1 10.3.2 10.4 10.4.1 10.5
        10.5.1 10.6 10.6.1 10.7 10.7.1 10.8 11 11.1 11.2 11.3 12
    """,
    "3-5": """
        1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.3 5 5.1 5.2 5.2.1 5.2.2 5.2.3
        5.2.4 5.2.5 5.2.6 5.3 5.3.1 5.3.1.1 5.3.1.2 5.3.1.3 5.3.1.4 5.3.1.5 5.3.1.6 5.3.1.7
        5.3.1.7.1 5.3.1.7.2 5.3.1.8 5.3.2 5.3.3 5.3.4 5.3.5 5.4 5.4.1 5.4.2 5.4.3 5.4.4 5.4.5
        5.5 5.5.1 5.5.2 5.5.3 5.6 6 7 7.1 8 9 10 10.1 10.2 10.3 10.3.1 10.3.2 10.4 10.4.1 10.5
        10.5.1 10.6 10.6.1 10.7 10.7.1 10.8 11
    """,
    "6": """
        1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.2.1 4.2.2 4.2.3 4.2.4 4.2.5
        4.2.6 4.3 4.3.1 4.3.1.1 4.3.1.2 4.3.1.3 4.3.1.4 4.3.1.5 4.3.1.6 4.3.1.7 4.3.1.7.1
        4.3.1.7.2 4.3.1.8 4.3.2 4.3.3 4.3.4 4.3.5 4.4 4.4.1 4.4.2 4.4.3 4.4.4 4.4.5 4.5 4.5.1
        4.5.2 4.5.3 4.6 5 6 6.1 7 8 9 9.1 9.2 9.3 9.3.1 9.3.2 9.4 9.4.1 9.5 9.5.1 9.6 9.6.1 9.7
        9.7.1 9.8 10
    """,
    "7": """
        1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.2.1 4.2.2 4.2.3 4.2.4 4.2.5
        4.2.6 4.3 4.3.1 4.3.1.1 4.3.1.2 4.3.1.3 4.3.1.4 4.3.1.5 4.3.1.6 4.3.1.7 4.3.1.7.1
        4.3.1.7.2 4.3.1.8 4.3.2 4.3.3 4.3.4 4.3.5 4.4 4.4.1 4.4.2 4.4.3 4.4.4 4.4.5 4.5 4.5.1
        4.5.2 4.5.3 4.6 4.6.1 4.6.2 4.6.3 4.6.4 4.7 5 6 6.1 7 8 9 9.1 9.2 9.3 9.3.1 9.3.2 9.4
        9.4.1 9.5 9.5.1 9.6 9.6.1 9.7 9.7.1 9.8 10
    """,
    "8-9": """
        1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.2.1 4.3 4.3.1 4.3.2 4.3.3
        4.3.4 4.3.5 4.3.5.1 4.3.5.2 4.3.5.3 4.3.6 4.3.7 4.4 4.4.1 4.4.1.1 4.4.1.2 4.4.1.3
        4.4.1.4 4.4.1.5 4.4.1.6 4.4.1.7 4.4.1.7.1 4.4.1.7.2 4.4.1.8 4.4.2 4.4.3 4.4.4 4.4.5 4.5
        4.5.1 4.5.2 4.5.3 4.5.4 4.5.5 4.6 4.6.1 4.6.2 4.6.3 4.7 4.7.1 4.7.2 4.7.3 4.7.4 4.8 5 6
        6.1 7 8 9 9.1 9.2 9.3 9.3.1 9.3.2 9.4 9.4.1 9.5 9.5.1 9.6 9.6.1 9.7 9.7.1 9.8 10
    """,
    "10": """
        1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.2.1 4.3 4.3.1 4.3.2 4.3.3
        4.3.4 4.3.5 4.3.5.1 4.3.5.2 4.3.5.3 4.3.6 4.3.7 4.4 4.4.1 4.4.1.1 4.4.1.2 4.4.1.3
        4.4.1.4 4.4.1.5 4.4.1.6 4.4.1.7 4.4.1.7.1 4.4.1.7.2 4.4.1.8 4.4.2 4.4.3 4.4.4 4.4.5 4.5
        4.5.1 4.5.2 4.5.3 4.5.4 4.5.5 4.6 4.6.1 4.6.2 4.6.3 4.7 4.7.1 4.7.2 4.7.3 4.7.4 4.8 5 6
        6.1 7 8 9 9.1 9.2 9.3 9.4 9.5 9.5.1 9.5.2 9.6 9.6.1 9.7 9.7.1 9.8 9.8.1 9.9 9.9.1 9.10
        10
    """,
    "11": """
        1 1.1 1.2 1.3 1.4 2 2.1 2.2 2.3 2.4 2.5 3 4 4.1 4.2 4.2.1 4.3 4.3.1 4.3.2 4.3.3 4.3.4
        4.3.5 4.3.5.1 4.3.5.2 4.3.5.3 4.3.6 4.3.7 4.4 4.4.1 4.4.1.1 4.4.1.2 4.4.1.3 4.4.1.4
        4.4.1.5 4.4.1.6 4.4.1.7 4.4.1.7.1 4.4.1.7.2 4.4.1.8 4.4.2 4.4.3 4.4.4 4.4.5 4.5 4.5.1
        4.5.2 4.5.3 4.5.4 4.5.5 4.6 4.6.1 4.6.2 4.6.3 4.7 4.7.1 4.7.2 4.7.3 4.7.4 4.8 5 6 6.1 7
        8 9 9.1 9.2 9.3 9.4 9.5 9.5.1 9.5.2 9.6 9.6.1 9.7 9.7.1 9.8 9.8.1 9.9 9.9.1 9.10 10
    """,
    "12": """
        1 1.1 1.2 1.3 1.4 1.5 2 3 3.1 3.2 3.3 3.4 4 5 5.1 5.2 5.2.1 5.3 5.3.1 5.3.2 5.3.3 5.3.4
        5.3.5 5.3.5.1 5.3.5.2 5.3.5.3 5.3.6 5.3.7 5.4 5.4.1 5.4.1.1 5.4.1.2 5.4.1.3 5.4.1.4
        5.4.1.5 5.4.1.6 5.4.1.7 5.4.1.7.1 5.4.1.7.2 5.4.1.8 5.4.2 5.4.3 5.4.4 5.4.5 5.5 5.5.1
        5.5.2 5.5.3 5.5.4 5.5.5 5.6 5.6.1 5.6.2 5.6.3 5.7 5.7.1 5.7.2 5.7.3 5.7.4 5.8 6 7 7.1 8
        9 10 10.1 10.2 10.3 10.4 10.5 10.6 10.6.1 10.6.2 10.7 10.7.1 10.8 10.8.1 10.9 10.9.1
        10.10 10.10.1 10.11 11
    """,
}
HERE = Path(__file__).parent
SPEC_DIR = Path(os.environ.get("MYELIN_SPEC_DIR", "/work/shared/spec"))
VERSION_IDS = list(KNOWN_ROOM_VERSIONS)
_ID_FORM = re.compile(r"\bv(\d+)-rule-(\d+(?:\.\d+)*)(?![\d.])")
_NAME_FORM = re.compile(r"::test_v(\d+)_rule_(\d+(?:_\d+)*)(?=_[a-z]|\[|$)")


def spec_rules() -> dict[str, list[str]]:
    """Version identifier -> its rule numbers, in order."""
    out = {}
    for span, text in SPEC_RULES_TEXT.items():
        low, _, high = span.partition("-")
        for n in range(int(low), int(high or low) + 1):
            out[str(n)] = text.split()
    return out


def leaves(numbers: list[str]) -> list[str]:
    return [n for n in numbers if not any(m.startswith(n + ".") for m in numbers)]


def parse_spec_rules(version: str) -> list[str]:
    """The numbered rule list of rooms/v<version>.md (or the auth-rules fragment it includes),
    numbered as rendered."""
    rooms = SPEC_DIR / "content" / "rooms"
    text = (rooms / f"v{version}.md").read_text()
    fragment = re.search(r'rver-fragment name="(v\d+-auth-rules)"', text)
    if fragment:
        text = (rooms / "fragments" / f"{fragment.group(1)}.md").read_text()
    start = re.search(r"^The (rules are|complete list of rules.*is) as follows:$", text, re.M)
    assert start is not None
    body = text[start.end() :]
    body = body[: body.index("\n{{% boxes/note %}}")]
    numbers: list[str] = []
    stack: list[tuple[int, list[int]]] = []  # (indent, number) of the open list items
    for line in body.splitlines():
        item = re.match(r"^( *)(\d+)\.\s", line)
        if not item:
            continue
        indent, written = len(item.group(1)), int(item.group(2))
        while stack and stack[-1][0] > indent:
            stack.pop()
        if stack and stack[-1][0] == indent:  # a sibling: the list counts on
            parts = stack.pop()[1]
            parts = [*parts[:-1], parts[-1] + 1]
        else:  # a new (sub-)list starts at its first item's number
            parts = [*(stack[-1][1] if stack else []), written]
        stack.append((indent, parts))
        numbers.append(".".join(map(str, parts)))
    return numbers


def collect_test_ids(session_ids: list[str] | None = None) -> list[str]:
    """Node IDs of the tests in this folder: ``session_ids`` if they cover every file, else
    those of a collect-only run."""
    files = {p.name for p in HERE.glob("test_*.py")}
    ids = session_ids or []
    if {Path(i.split("::")[0]).name for i in ids} >= files:
        return ids
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         str(HERE)],
        capture_output=True, text=True, cwd=HERE.parents[2], check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def covered_rules(test_ids: list[str]) -> dict[str, dict[str, int]]:
    """Version -> rule number -> how many test cases name it."""
    covered: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for test_id in test_ids:
        for version, number in _ID_FORM.findall(test_id):
            covered[version][number] += 1
        for version, number in _NAME_FORM.findall(test_id):
            covered[version][number.replace("_", ".")] += 1
    return covered


@pytest.mark.skipif(not SPEC_DIR.is_dir(), reason=f"no spec at {SPEC_DIR}")
@pytest.mark.parametrize("version", VERSION_IDS)
def test_rule_table_matches_the_spec(version: str) -> None:
    assert parse_spec_rules(version) == spec_rules()[version]


@pytest.mark.parametrize("version", VERSION_IDS)
def test_implementation_numbers_every_rule_of_the_spec(version: str) -> None:
    """myelin.core.auth.rules cites exactly the spec's rules, in the spec's order."""
    assert list(numbering(KNOWN_ROOM_VERSIONS[version]).values()) == spec_rules()[version]


def test_every_rule_of_every_version_has_a_test(request: pytest.FixtureRequest) -> None:
    session_ids = [item.nodeid for item in request.session.items]
    covered = covered_rules(collect_test_ids(session_ids))
    rules = spec_rules()
    missing = {v: [n for n in leaves(rules[v]) if n not in covered[v]] for v in VERSION_IDS}
    assert not any(missing.values()), f"rules without a test: {missing}"
    unknown = {v: sorted(set(covered[v]) - set(rules[v])) for v in VERSION_IDS}
    assert not any(unknown.values()), f"tests name rules the spec does not have: {unknown}"
    assert set(covered) <= set(VERSION_IDS)


if __name__ == "__main__":
    coverage = covered_rules(collect_test_ids())
    for version, numbers in spec_rules().items():
        tested = [n for n in leaves(numbers) if n in coverage[version]]
        print(f"v{version}: {len(numbers)} rules, {len(leaves(numbers))} leaf rules, "
              f"{len(tested)} tested by {sum(coverage[version].values())} test cases")
        for number in numbers:
            print(f"    {number:<10} {coverage[version].get(number, 0)}")
