"""README.md and docs/*.md hold together: links and anchors resolve, the make targets they name
exist, the index lists every page, and the README stays short.

Anchors follow GitHub's rules: a heading's text, lower-cased, with every character that is not
a letter, a digit, an underscore, a hyphen or a space dropped, and spaces turned into hyphens; a
repeated heading gets -1, -2, ... Links and `make` commands are read outside and inside code
respectively: a link in a code block is not a link, and a command in prose is not a command.
Paths under sql/ and scripts/ named in the pages are not checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# the repository root: the nearest folder above this file that holds the Makefile
REPO_ROOT = next(folder for folder in Path(__file__).resolve().parents if (folder / "Makefile").is_file())
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the target may carry a "title"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
MAKE_COMMAND = re.compile(r"(?<![\w./-])make[ \t]+((?:[A-Z_]+=\S+[ \t]+)*)([a-z][a-z0-9-]*)\b")
MAKE_TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", flags=re.M)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def split_code(text: str) -> tuple[str, str]:
    """(prose, code): the page's text outside code, and the text of its code blocks and spans."""
    prose, code, in_fence = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            code.append(line)
            continue
        code.extend(match.group(2) for match in INLINE_CODE.finditer(line))
        prose.append(INLINE_CODE.sub("", line))
    return "\n".join(prose), "\n".join(code)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (links reduced to their text first)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(prose) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def makefile_targets() -> set[str]:
    return set(MAKE_TARGET.findall((REPO_ROOT / "Makefile").read_text(encoding="utf-8")))


def test_the_pages_exist():
    assert README.is_file()
    assert (DOCS / "README.md").is_file(), "docs/README.md, the index of the pages"
    assert len(pages()) > 2


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file {resolved.relative_to(REPO_ROOT)}")
            continue
        if anchor:
            if resolved.suffix != ".md" or not resolved.is_file():
                broken.append(f"{target}: an anchor into something that is not a page")
            elif anchor not in anchors(resolved):
                broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.relative_to(REPO_ROOT)}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_make_target_named_exists(page: Path):
    _, code = split_code(page.read_text(encoding="utf-8"))
    targets = makefile_targets()
    named = {match.group(2) for match in MAKE_COMMAND.finditer(code)}
    missing = sorted(named - targets)
    assert not missing, f"make targets named in {page.name} but not in the Makefile: {missing}"


def test_the_index_lists_every_page():
    index = DOCS / "README.md"
    listed = {(index.parent / target.partition("#")[0]).resolve() for target in links(index)}
    unlisted = [p.name for p in sorted(DOCS.glob("*.md")) if p != index and p.resolve() not in listed]
    assert not unlisted, f"docs/README.md does not link to {unlisted}"


def test_the_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs in docs/"


def test_the_slugs_follow_githubs_rules():
    """The anchor rule itself, on headings of the kinds these pages use."""
    assert slug("Roles and least privilege") == "roles-and-least-privilege"
    assert slug("Features (`feats.customer_features`), point in time") == "features-featscustomer_features-point-in-time"
    assert slug("The original project's files") == "the-original-projects-files"
    assert slug("S3, compressed files, UTF-16, very wide files") == "s3-compressed-files-utf-16-very-wide-files"
    assert slug("Alerts (`ALERTS_WEBHOOK_URL`)") == "alerts-alerts_webhook_url"
    assert slug("What `make all` prints") == "what-make-all-prints"
