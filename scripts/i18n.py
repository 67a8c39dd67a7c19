"""Extract, update and compile xlstock's message catalogues (Babel).

    python scripts/i18n.py            # after changing a message: update the .po files
                                      # (new texts come in untranslated), compile the .mo
    python scripts/i18n.py --check    # what the tests run: every message translated,
                                      # the same placeholders, the .mo up to date

The texts are those inside ``_()``, ``_n()``, ``N_()``, ``NC_()`` (a text with its
context: a workbook's header, a button) and the account pages' ``t()``,
in ``xlstock/**.py`` and the account pages' templates. Babel's own command line
(``pybabel extract/update/compile``) does the same with the keywords below; this script
only puts the steps and the project's paths in one place.
"""

from __future__ import annotations

import argparse
import io
import string
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "xlstock" / "locale"
DOMAIN = "xlstock"
LANGUAGES = ("fr",)
KEYWORDS = {"_": None, "_n": (1, 2), "N_": None, "t": None, "NC_": ((1, "c"), 2)}
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]


def extracted() -> Catalog:
    """The messages of the code, as a template catalogue."""
    template = Catalog(domain=DOMAIN, project="xlstock", charset="utf-8")
    found = extract_from_dir(str(ROOT / "xlstock"), METHODS, {}, KEYWORDS,
                             comment_tags=("Translators:",), strip_comment_tags=True)
    for filename, lineno, message, comments, context in found:
        if isinstance(message, tuple) and len(message) == 1:
            message = message[0]
        if not message or (isinstance(message, tuple) and not all(message)):
            continue  # a call on a variable (t(label)): its texts are marked where made
        template.add(message, None, [(f"xlstock/{filename}", lineno)],
                     auto_comments=comments, context=context)
    from xlstock.cli import main
    from xlstock.cli.click_texts import help_texts

    for text in help_texts(main):  # the commands' --help: docstrings and options' help
        template.add(text, None, [("xlstock/cli/__init__.py", 0)],
                     flags=("python-brace-format",) if "{" in text else ())
    return template


def fields(text: str) -> set[str]:
    """The placeholders of ``text``, with their formats: {count:n}, {sku}."""
    try:
        return {f"{name}:{spec}" for _, name, spec, _ in string.Formatter().parse(text)
                if name is not None}
    except ValueError as error:
        return {f"<bad text: {error}>"}


def problems(catalog: Catalog, template: Catalog, language: str) -> list[str]:
    """What is wrong with ``catalog`` against the code's messages."""
    found = []
    for message in template:
        if not message.id:
            continue
        where = f"{language}: {message.id!r} ({message.locations[0][0]}:{message.locations[0][1]})"
        have = catalog.get(message.id, context=message.context)
        strings = [] if have is None else (list(have.string) if isinstance(have.string, tuple)
                                           else [have.string])
        if have is None or not all(strings) or have.fuzzy:
            found.append(f"{where}: no translation")
            continue
        ids = list(message.id) if isinstance(message.id, tuple) else [message.id]
        wanted = set().union(*(fields(i) for i in ids))
        for text in strings:
            if fields(text) - wanted or (len(ids) == 1 and fields(text) != wanted):
                found.append(f"{where}: placeholders {sorted(fields(text))} "
                             f"where the English has {sorted(wanted)}")
    return found


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def _key(text: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    """A message's id or string as a dict key: a plural's forms are a list or a tuple."""
    return text if isinstance(text, str) else tuple(text)


def check() -> list[str]:
    template = extracted()
    found = []
    for language in LANGUAGES:
        with po_path(language).open("rb") as file:
            catalog = read_po(file, locale=language, domain=DOMAIN)
        found += problems(catalog, template, language)
        mo = po_path(language).with_suffix(".mo")
        if not mo.exists():
            found.append(f"{mo}: missing; run python scripts/i18n.py")
            continue
        with mo.open("rb") as file:
            shipped = read_mo(file)
        if {_key(m.id): _key(m.string) for m in shipped if m.id} != {
                _key(m.id): _key(m.string) for m in catalog
                if m.id and not m.fuzzy and m.string}:
            found.append(f"{mo}: older than {po_path(language).name}; run python scripts/i18n.py")
    return found


def update() -> None:
    template = extracted()
    with (LOCALE / f"{DOMAIN}.pot").open("wb") as file:
        write_po(file, template, omit_header=True, sort_output=True, width=100)
    for language in LANGUAGES:
        path = po_path(language)
        with path.open("rb") as file:
            catalog = read_po(file, locale=language, domain=DOMAIN)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with path.open("wb") as file:
            write_po(file, catalog, omit_header=True, sort_output=True, width=100,
                     ignore_obsolete=True)
        path.with_suffix(".mo").write_bytes(compiled(catalog))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check, change nothing")
    if parser.parse_args().check:
        found = check()
        print("\n".join(found) or "catalogues complete")
        return 1 if found else 0
    update()
    found = check()
    print(f"{len(found)} message(s) to translate" if found else "catalogues complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
