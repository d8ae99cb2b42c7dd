"""Every relative link in README.md and docs/*.md points to a file that exists, and every
anchor of a link to a Markdown page (the page itself included) to one of its headings.

Links inside code (fenced blocks, `inline code`) are not links and are not checked as links;
but the project's own file paths (`engine/compile/kinds/aggregates.py`) and Python modules
(`engine.export.forms.max_violation`, `from engine.export.constraints import ...`) named
anywhere in a page must exist, so a module move cannot leave the docs pointing nowhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code."""
    text = _FENCE.sub("", text)
    return _CODE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page, repeated headings numbered as GitHub does."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for match in _HEADING.finditer(text):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` that point nowhere, each with the reason."""
    problems = []
    for match in _LINK.finditer(_prose(page.read_text(encoding="utf-8"))):
        target = match.group(1)
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto: ...
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Some `code`, here\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Part one\n\n"
        "[ok](other.md) [ok](other.md#some-code-here) [ok](#part-one) [ok](https://x.org/a)\n"
        "[bad](missing.md) [bad](other.md#nowhere) [bad](#part-two)\n"
        "`[not a link](missing.md)`\n\n```\n[not a link](missing.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nowhere: no heading #nowhere in other.md",
        "#part-two: no heading #part-two in page.md",
    ]


def test_slugs_follow_github() -> None:
    assert slug("Verdicts, severity, score") == "verdicts-severity-score"
    assert slug("The HTTP service") == "the-http-service"
    assert slug("`scale_back`: only the rows the traded names move") == (
        "scale_back-only-the-rows-the-traded-names-move"
    )
    assert slug('Memory: risk models stay in factor form (issue "Fail closed")') == (
        "memory-risk-models-stay-in-factor-form-issue-fail-closed"
    )


PACKAGES = ("models", "engine", "solvers", "api", "benchmarks", "tests")
_FILE = re.compile(rf"(?<![\w/.-])((?:{'|'.join(PACKAGES)})/[\w/]+\.(?:py|ipynb))")
_MODULE = re.compile(rf"(?<![\w/.-])((?:{'|'.join(PACKAGES[:4])})(?:\.[a-z_][a-z0-9_]*)+)")
CODE_PAGES = [*PAGES, REPO / "notebooks" / "README.md"]


def missing_code_paths(page: Path) -> list[str]:
    """File paths and dotted module paths of the project named in `page` that do not exist."""
    text = page.read_text(encoding="utf-8")
    problems = [f"{f}: no such file" for f in _FILE.findall(text) if not (REPO / f).exists()]
    for dotted in set(_MODULE.findall(text)):
        head = dotted.split(".")
        # `engine.x.y`: the longest importable prefix must be at least the package's module.
        if len(head) >= 2 and importlib.util.find_spec(head[0]) is not None:
            module = ".".join(head[:2])
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found and not _attribute_of_package(head[0], head[1]):
                problems.append(f"{dotted}: no module {module}")
    return sorted(problems)


def _attribute_of_package(package: str, name: str) -> bool:
    """True when `name` is a public name of `package` (`engine.PolicyEngine`)."""
    return name in getattr(importlib.import_module(package), "__all__", ())


@pytest.mark.parametrize("page", CODE_PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_code_a_page_names_exists(page: Path) -> None:
    assert missing_code_paths(page) == []
