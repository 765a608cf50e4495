"""Every reference to `docs/<file>.md#<anchor>` (in code, tests, the README and docs/ itself) resolves.

Comments cite the rules they implement by a docs/ anchor, so a reader who clones the
repository can follow each one; a renamed or deleted anchor fails here, not in a reader's hands.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
#: `docs/decisions.md#decision-12` anywhere; `decisions.md#decision-12` or `(#routing)` inside docs/.
CITED = re.compile(r"docs/([\w-]+\.md)#([\w-]+)")
LOCAL = re.compile(r"\]\((?:([\w-]+\.md))?#([\w-]+)\)")


def anchors() -> dict[str, set[str]]:
    return {page.name: set(ANCHOR.findall(page.read_text())) for page in DOCS.glob("*.md")}


def citations() -> list[tuple[str, str, str]]:
    """(where, page, anchor) for every docs/ reference in the repository's text files."""
    found = []
    files = [*ROOT.joinpath("convoy_stream").rglob("*.py"), *ROOT.joinpath("bridges").rglob("*.py"),
             *ROOT.joinpath("tables").rglob("*.py"), *ROOT.joinpath("devkafka").rglob("*.py"),
             *ROOT.joinpath("tests").rglob("*.py"),
             *ROOT.joinpath("bench").glob("*.py"), ROOT / "README.md"]
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            found += [(f"{path.relative_to(ROOT)}:{n}", page, anchor) for page, anchor in CITED.findall(line)]
    for page in DOCS.glob("*.md"):
        for n, line in enumerate(page.read_text().splitlines(), 1):
            found += [(f"docs/{page.name}:{n}", target or page.name, anchor) for target, anchor in LOCAL.findall(line)]
    return found


def test_every_docs_reference_resolves() -> None:
    known = anchors()
    assert known, "docs/ has no pages"
    broken = [f"{where}: {page}#{anchor}" for where, page, anchor in citations()
              if anchor not in known.get(page, set())]
    assert not broken, "references to missing docs/ anchors:\n" + "\n".join(broken)


def test_decisions_are_numbered_one_to_eighteen() -> None:
    assert {f"decision-{n}" for n in range(1, 19)} <= anchors()["decisions.md"]
