"""Docs checked by tests: every command has help with an example, and a section in
docs/cli.md."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from xlstock.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield path


COMMANDS = list(_commands(main))


def test_the_contract_commands_exist():
    names = {" ".join(path) for path in COMMANDS}
    assert {"new", "sync", "preview", "publish", "validate", "serve", "shop add", "order",
            "demo"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_documented(path):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"## xlstock {' '.join(path)}\n" in text


def test_readme_gives_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install '.[server]' && xlstock demo" in text
    assert "bash scripts/test.sh" in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci


# --- links, pictures and the French guide -------------------------------------------------

DOCS = ROOT / "docs"
FRENCH = DOCS / "fr"
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(text: str) -> str:
    """``text`` without its code blocks and inline code."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped (letters
    with accents kept), spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in FENCE.sub("", page.read_text(
        encoding="utf-8")).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_picture_exists(page: Path):
    """A link to a page, a folder or a picture of the repository names one that exists,
    and a link to a heading (``page.md#heading``) names a heading of that page."""
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, anchor = target.partition("#")
        found = (page.parent / path).resolve() if path else page
        if not found.exists():
            broken.append(f"{target}: no such file")
        elif anchor and found.suffix == ".md" and anchor not in _anchors(found):
            broken.append(f"{target}: no heading #{anchor} in {found.name}")
    assert broken == []


def test_every_french_page_is_linked_from_the_french_contents():
    """docs/fr/index.md links every page of docs/fr; the README and the short guide
    link the contents."""
    linked = {(FRENCH / target.partition("#")[0]).resolve()
              for target in _links(FRENCH / "index.md") if not re.match(r"[a-z]+:", target)}
    pages = {page.resolve() for page in FRENCH.glob("*.md")} - {(FRENCH / "index.md").resolve()}
    assert sorted(p.name for p in pages - linked) == []
    assert "docs/fr/index.md" in _links(ROOT / "README.md")
    assert "index.md" in _links(FRENCH / "guide.md")
    assert "En français" in (ROOT / "README.md").read_text(encoding="utf-8").split("## ")[0]


def test_every_french_picture_is_shown_on_a_page():
    shown = {(page.parent / target).resolve() for page in FRENCH.glob("*.md")
             for target in _links(page) if target.endswith(".png")}
    pictures = {picture.resolve() for picture in (FRENCH / "images").glob("*.png")}
    assert sorted(p.name for p in pictures - shown) == []
    assert {"connexion.png", "profil.png", "services.png", "jetons.png",
            "niveaux-de-stock.png", "historique.png", "annulation.png",
            "classeur.png"} <= {p.name for p in pictures}


@pytest.mark.parametrize("page", sorted(FRENCH.glob("*.md")), ids=lambda p: p.name)
def test_french_pages_keep_french_typography(page: Path):
    """A space before : ; ? and !, and « » with spaces inside, outside code and links."""
    text = _prose(page.read_text(encoding="utf-8"))
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"https?://\S+", "", text)
    faults = [f"{m.group(0)!r} in …{text[max(0, m.start() - 30):m.end() + 10]!r}"
              for m in re.finditer(r"\S[:;?!](?=\s|$)|«\S|\S»|\"\w", text)]
    assert faults == []
