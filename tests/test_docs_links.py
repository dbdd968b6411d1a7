"""Every relative link in README.md and docs/*.md points to a file that exists, and every
``#anchor`` into a markdown file names one of its headings (GitHub's slug rule).

Pure text processing over a dozen files: it runs in a few milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target may be <wrapped> and followed by a "title".
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks, with inline code spans blanked."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, _INLINE_CODE.sub("", line)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than
    '-' and '_' removed, each space a '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            slug = github_slug(match.group(2).strip())
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def broken_links(files: list[Path]) -> list[str]:
    """One line per relative link that points at a missing file or a missing heading."""
    problems = []
    for doc in files:
        for number, line in _prose_lines(doc.read_text(encoding="utf-8")):
            for match in _LINK.finditer(line):
                target = match.group(1).strip("<>")
                if _EXTERNAL.match(target):
                    continue
                path, _, anchor = target.partition("#")
                dest = (doc.parent / unquote(path)) if path else doc
                where = f"{doc.name}:{number}: ({target})"
                if not dest.exists():
                    problems.append(f"{where} no such file {dest}")
                elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
                    problems.append(f"{where} no heading with anchor #{anchor} in {dest.name}")
    return problems


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_and_docs_links_resolve():
    files = _docs()
    assert len(files) > 5  # README plus the docs folder were found
    assert broken_links(files) == []


def test_checker_reports_planted_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# Clocks: `--clock wall|thread_cpu`\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[fine](other.md#clocks---clock-wallthread_cpu) and [repeat](other.md#twice-1)\n"
        "[gone](missing.md) and [wrong anchor](other.md#clocks-clock-wallthread_cpu)\n"
        "[own heading](#nowhere) and [web](https://example.com/x.md)\n"
        "```\n[inside a fence](not-checked.md)\n```\n"
        "`[inline code](not-checked.md)`\n",
        encoding="utf-8",
    )
    problems = broken_links([doc])
    assert len(problems) == 3, problems
    assert "doc.md:2: (missing.md) no such file" in problems[0]
    assert "#clocks-clock-wallthread_cpu" in problems[1]
    assert "doc.md:3: (#nowhere)" in problems[2]


def test_github_slug_rule():
    assert github_slug("Drift: the reference architecture") == "drift-the-reference-architecture"
    assert github_slug("Clocks: `--clock wall|thread_cpu`") == "clocks---clock-wallthread_cpu"
    assert github_slug("The task teacher") == "the-task-teacher"
    assert github_slug("See [the docs](x.md), v2.1") == "see-the-docs-v21"
