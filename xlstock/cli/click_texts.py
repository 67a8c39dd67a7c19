"""Click's own words in the merchant's language: a usage error, the help's headings,
a confirmation prompt; and the commands' own help (:func:`translate_help`).

Click writes them through :func:`gettext.gettext` and :func:`gettext.ngettext` of the
``messages`` domain, which ships no French and follows the locale rather than
``XLSTOCK_LANG``. :func:`speak_through_xlstock` points click's modules at xlstock's
catalogue and language instead (:mod:`xlstock.i18n`); the texts below, click's own
(8.x) word for word, are in that catalogue. A text of click's that is not there shows
in English, as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import click

# ``from click import`` (not ``click.exceptions``): after a Ctrl-C cut ``import click``
# short, a second import finds the submodules in sys.modules but not as the package's
# attributes; ``from`` falls back to sys.modules.
from click import core, decorators, exceptions, formatting, parser, termui, types

from xlstock import i18n
from xlstock.i18n import N_, _n

CLICK_TEXTS = (
    N_("Usage:"), N_("Options"), N_("Commands"), N_("Positional arguments"),
    N_("Error: {message}"), N_("Try '{command} {option}' for help."),
    N_("Invalid value: {message}"), N_("Invalid value for {param_hint}: {message}"),
    N_("Missing argument"), N_("Missing option"), N_("Missing parameter"),
    N_("Missing command."), N_("No such option {name!r}."), N_("No such command {name!r}."),
    N_("Option {name!r} does not take a value."), N_("Aborted!"),
    N_("{value!r} is not a valid {number_type}."), N_("{value} is not in the range {range}."),
    N_("{name} {filename!r} does not exist."), N_("{name} {filename!r} is a directory."),
    N_("{name} {filename!r} is a file."), N_("file"), N_("directory"), N_("path"),
    N_("Show this message and exit."), N_("Show the version and exit."),
    N_("%(prog)s, version %(version)s"), N_("Error: invalid input"),
    N_("default: {default}"), N_("required"),
)
"""Click's texts a merchant can meet, marked for the catalogue."""

HEADING = N_("{heading}:")
"""A help heading, whose colon click writes itself (French: ``Options :``)."""

CLICK_MODULES = (core, exceptions, parser, types, decorators, termui, formatting)
"""Click's modules that translate through their module-level ``_`` and ``ngettext``
(gettext's): click 8 calls them for every text it shows; the upper bound on click in
pyproject.toml is for this."""


def _plural_texts() -> None:  # never called: marks click's plural texts for the catalogue
    _n("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)", 1)
    _n("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})", 1)
    _n("{value!r} is not {choice}.", "{value!r} is not one of {choices}.", 1)
    _n("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments.",
       1)


def gettext(message: str) -> str:
    """``message`` in xlstock's current language, from xlstock's catalogue."""
    return i18n.catalogue(i18n.current()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form for ``count`` in xlstock's current language."""
    return i18n.catalogue(i18n.current()).ngettext(singular, plural, count)


def _write_heading(self: formatting.HelpFormatter, heading: str) -> None:
    """click's ``HelpFormatter.write_heading``, with the colon as the language sets it."""
    self.write(f"{'':>{self.current_indent}}{gettext(HEADING).format(heading=heading)}\n")


def speak_through_xlstock() -> None:
    """Make click translate through xlstock's catalogue, in xlstock's language."""
    for module in CLICK_MODULES:
        if hasattr(module, "_"):
            module._ = gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
    formatting.HelpFormatter.write_heading = _write_heading  # type: ignore[method-assign]


def _helped(group: click.Command) -> Iterator[tuple[click.Command | click.Parameter, str]]:
    """Each command of ``group`` (itself included) and option with a help text, and
    that text as the catalogue holds it (its docstring's indentation taken out)."""
    if group.help:
        yield group, inspect.cleandoc(group.help)
    for param in group.params:
        text = getattr(param, "help", None)
        if isinstance(param, click.Option) and text:
            yield param, inspect.cleandoc(text)
    if isinstance(group, click.Group):
        for command in group.commands.values():
            yield from _helped(command)


def help_texts(group: click.Command) -> list[str]:
    """The commands' and options' help texts, in English: ``scripts/i18n.py`` puts them
    in the catalogue beside the texts marked in the code."""
    return list(dict.fromkeys(text for _, text in _helped(group)))


def translate_help(group: click.Command, language: str | None = None) -> None:
    """Give every command and option of ``group`` its help in ``language`` (the current
    one by default). The console script calls it before it runs a command; the commands
    as imported keep their English (what ``scripts/i18n.py`` reads)."""
    found = i18n.catalogue(language or i18n.current())
    for owner, text in _helped(group):
        owner.help = found.gettext(text)
