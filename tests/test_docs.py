"""The docs cannot drift: every relative link in README.md, ARCHITECTURE.md and docs/*.md reaches a file and,
with a #fragment, a heading in it; docs/cli.md is what the commands' --help says; the README stays a front door."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without code blocks and code spans (a link or a heading there is not one)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text of links kept, lower case, punctuation dropped, spaces → hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), Counter()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
            continue
        file, _, fragment = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no file {os.path.relpath(dest, REPO)}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {os.path.relpath(dest, REPO)}")
    return broken


def test_slugs_are_githubs():
    assert slug("Vision: the tiny Qwen2-VL through `mlxcli serve`") == "vision-the-tiny-qwen2-vl-through-mlxcli-serve"
    assert slug("`mlxcli serve` against `mlx_lm.server`") == "mlxcli-serve-against-mlx_lmserver"
    assert slug("One request at a time: `--kv-bits`") == "one-request-at-a-time---kv-bits"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    assert broken_links(page) == []


def test_a_broken_link_is_found(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [no such heading](#nowhere)\n"
                    "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n# not a heading\n```\n")
    assert [problem.split(":")[0] for problem in broken_links(page)] == ["missing.md", "#nowhere"]


def test_cli_reference_matches_help():
    """docs/cli.md is regenerated from every command registered on the Typer app: a new or changed command
    fails here until `.venv/bin/python scripts/cli_docs.py` is run."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "cli_docs.py"), "--check"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_is_a_front_door():
    """Details belong in docs/ (one page per topic); the README links to them."""
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= 350, f"README.md has {lines} lines: move the details into a docs/ page and link it"
