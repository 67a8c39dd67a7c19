"""What xlstock says, in the merchant's language: one way to translate in the project.

Every text a merchant can see is written in English in the code, inside ``_()`` (or
``_n()`` for a count), with named placeholders::

    raise SheetError(_("Stock!{cell}: {value} is not a whole number", cell=ref, value=v))
    summary = _n("Synced {count:n} SKU", "Synced {count:n} SKUs", n, count=n)

The French (and any later language) is in a gettext catalogue,
``xlstock/locale/<language>/LC_MESSAGES/xlstock.po``, extracted and compiled with Babel
(``python scripts/i18n.py``); the compiled ``.mo`` files ship in the wheel. The account
pages use the same catalogue (their ``t()`` is :func:`translate`).

Which language:
- The command line, the buttons' alerts: :func:`current`, the machine's
  (``XLSTOCK_LANG``, else ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``, else on
  Windows the user's display language), or the one a caller chose with
  :func:`speaking`. A command on a workbook, and a button, speak the workbook's language
  when the machine asks for none (:func:`about_workbook`).
- The workbook (Status, Log): the workbook's own language, whatever the machine's. A
  message is a :class:`Message`, a ``str`` in the current language that remembers its
  English and its values, so :func:`render` can write it again in another language.

Placeholders take a format: ``{count:n}`` is a number in the language's way (``1,000``;
``1 000`` in French), ``{when:d}`` a date (``2026-12-06``; ``06/12/2026``),
``{when:dt}`` a date and time. Anything else formats as :meth:`str.format` does.

Adding a language (German, say) is a catalogue, not code: ``pybabel init -D xlstock
-i xlstock/locale/xlstock.pot -d xlstock/locale -l de``, translate the ``.po`` (the
messages, and under their contexts the workbook's words, the buttons and the date
patterns), add ``"de"`` to ``LANGUAGES`` in ``scripts/i18n.py`` and run it: the compiled
``.mo`` makes German one of :data:`LANGUAGES`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gettext
import locale
import os
import string
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

ENGLISH = "en"
FRENCH = "fr"
DOMAIN = "xlstock"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = (ENGLISH, *sorted(
    folder.name for folder in (LOCALE_DIR.iterdir() if LOCALE_DIR.is_dir() else ())
    if (folder / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()))
"""English (the code's own) and every language with a compiled catalogue: a language
is added by its catalogue alone, never by code."""

_chosen: ContextVar[str | None] = ContextVar("xlstock_language", default=None)


def language_of_locale(value: str) -> str | None:
    """``fr`` for ``fr_FR.UTF-8``, ``fr``, ``fr-CA``, ``FR``; ``en`` for another set
    locale; ``None`` for an empty one (or ``C``/``POSIX``, the unset default)."""
    value = value.strip()
    if not value or value in ("C", "POSIX") or value.startswith("C."):
        return None
    first = value.split(":")[0]  # LANGUAGE may list several: the first one wins
    code = first.replace("-", "_").split("_")[0].split(".")[0].lower()
    return code if code in LANGUAGES else ENGLISH


def machine_language(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the machine asks for: ``XLSTOCK_LANG``, then gettext's own order
    (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``), then on Windows, where those
    are seldom set, the user's display language; ``None`` when it asks for none (unset,
    ``C``, ``POSIX``: a scheduled job, a container, Excel for Mac starting Python)."""
    environ = os.environ if environ is None else environ
    for name in ("XLSTOCK_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        found = language_of_locale(environ.get(name, ""))
        if found:
            return found
    if sys.platform == "win32" and environ is os.environ:  # pragma: no cover - Windows
        import ctypes

        return language_of_lcid(ctypes.windll.kernel32.GetUserDefaultUILanguage())
    return None


def language_of_lcid(lcid: int) -> str | None:
    """The language of a Windows language id (``0x040C``, French (France): ``fr``;
    ``0x0409``: ``en``), by the standard library's table of them."""
    return language_of_locale(locale.windows_locale.get(lcid, ""))


def system_language(environ: Mapping[str, str] | None = None) -> str:
    """The machine's language (:func:`machine_language`); English when it asks for
    none."""
    return machine_language(environ) or ENGLISH


def about_workbook(language: str | None) -> str | None:
    """The language to speak about a workbook of ``language`` (for :func:`speaking`):
    the machine's when it asks for one, else the workbook's, whose words the merchant
    chose and reads in its buttons, headers and Status."""
    return machine_language() or language


def current() -> str:
    """The language xlstock speaks now: the one :func:`speaking` chose, else the
    locale's."""
    return _chosen.get() or system_language()


@contextlib.contextmanager
def speaking(language: str | None) -> Iterator[None]:
    """Speak ``language`` inside the ``with`` (``None``: the locale's)."""
    token = _chosen.set(language if language in LANGUAGES else None)
    try:
        yield
    finally:
        _chosen.reset(token)


@cache
def catalogue(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``language`` (English: none, the code's own text)."""
    if language == ENGLISH:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


class _Formatter(string.Formatter):
    """``str.format`` with the language's numbers and dates (``:n``, ``:d``, ``:dt``)."""

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language

    def format_field(self, value: Any, format_spec: str) -> Any:
        if format_spec == "n" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return number(value, self.language)
        if format_spec == "d" and isinstance(value, (dt.date, str)):
            return date(value, self.language)
        if format_spec == "dt" and isinstance(value, (dt.datetime, str)):
            return date_time(value, self.language)
        if isinstance(value, Message):
            value = value.render(self.language)
        return super().format_field(value, format_spec)


def _filled(text: str, language: str, params: Mapping[str, Any]) -> str:
    return _Formatter(language).vformat(text, (), params) if params else text


class Message(str):
    """A text in the current language that can be written again in another one.

    It is a ``str`` (what it shows is the current language's), and keeps its English
    ``msgid`` (and ``plural`` and the ``number`` it counts for a :func:`_n`) and its values."""

    msgid: str
    plural: str | None
    number: int | None
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: Mapping[str, Any], *, plural: str | None = None,
                count: int | None = None, language: str | None = None) -> Message:
        params = dict(params)
        text = _translated(msgid, plural, count, language or current())
        made = super().__new__(cls, _filled(text, language or current(), params))
        made.msgid, made.plural, made.number, made.params = msgid, plural, count, params
        return made

    def render(self, language: str) -> str:
        """This message in ``language``."""
        return _filled(_translated(self.msgid, self.plural, self.number, language), language,
                       self.params)

    def __reduce__(self) -> Any:  # a Message crosses a pickle (multiprocessing) as one
        return (_remade, (self.msgid, self.params, self.plural, self.number))


def _remade(msgid: str, params: dict[str, Any], plural: str | None,
            count: int | None) -> Message:
    return Message(msgid, params, plural=plural, count=count)


def _translated(msgid: str, plural: str | None, count: int | None, language: str) -> str:
    found = catalogue(language)
    if plural is None:
        return found.gettext(msgid)
    return found.ngettext(msgid, plural, count if count is not None else 1)


def _(msgid: str, /, **params: Any) -> Message:
    """``msgid`` in the current language, its placeholders filled from ``params``."""
    return Message(msgid, params)


def _n(singular: str, plural: str, count: int, /, **params: Any) -> Message:
    """The singular or plural form for ``count`` in the current language."""
    return Message(singular, params, plural=plural, count=count)


def N_(msgid: str, /) -> str:
    """Marks ``msgid`` for the catalogue without translating it now (a constant
    translated where it is shown, with :func:`translate`)."""
    return msgid


def NC_(context: str, msgid: str, /) -> str:
    """Marks ``msgid`` for the catalogue under ``context`` (a workbook's header, a
    button, a date pattern: words that may be translated apart from the same English
    elsewhere), without translating it now; :func:`translate_in` translates it."""
    return msgid


def translate_in(context: str, msgid: str, language: str, /) -> str:
    """``msgid`` in ``language``, as the catalogue translates it under ``context``."""
    return msgid if language == ENGLISH else catalogue(language).pgettext(context, msgid)


def translate(msgid: str, language: str, /, **params: Any) -> str:
    """``msgid`` in ``language`` (the account pages' ``t()`` and the e-mails use this)."""
    return _filled(_translated(msgid, None, None, language), language, params)


def render(text: Any, language: str) -> Any:
    """``text`` in ``language`` when it is a :class:`Message`; anything else as it is."""
    return text.render(language) if isinstance(text, Message) else text


def number(value: float, language: str | None = None) -> str:
    """``100,000`` in English, ``100 000`` in French (a narrow no-break space), by
    Babel's locale data (a whole number in English is Python's ``{:,}``, the same text,
    without the 60 ms of loading Babel's data in a command that shows nothing else)."""
    language = language or current()
    if language == ENGLISH and type(value) is int:
        return f"{value:,}"
    from babel.numbers import format_decimal  # loaded when a number is shown: 60 ms

    return str(format_decimal(value, locale=language))


def _as_datetime(value: dt.date | str) -> dt.date:
    if isinstance(value, str):  # a stored ISO stamp: 2026-12-06T10:00:00Z
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


# English keeps the ISO dates the Log has always had; each catalogue says its language's
# way (French: dd/MM/yyyy), in Babel's (CLDR) pattern syntax.
DATE_PATTERN = NC_("date pattern", "yyyy-MM-dd")
DATE_TIME_PATTERN = NC_("date pattern", "yyyy-MM-dd HH:mm")
STAMP_FORMAT = NC_("strftime", "%Y-%m-%d %H:%M:%S")
"""A workbook's stamps (Log, Settings), as :meth:`datetime.strftime` writes them."""


def date(value: dt.date | str, language: str | None = None) -> str:
    """``2026-12-06`` in English, ``06/12/2026`` in French."""
    from babel.dates import format_date

    language = language or current()
    pattern = translate_in("date pattern", DATE_PATTERN, language)
    return str(format_date(_as_datetime(value), pattern, locale=language))


def date_time(value: dt.datetime | str, language: str | None = None) -> str:
    """``2026-12-06 10:00`` in English, ``06/12/2026 10:00`` in French."""
    from babel.dates import format_datetime

    language = language or current()
    pattern = translate_in("date pattern", DATE_TIME_PATTERN, language)
    when = _as_datetime(value)
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time())
    return str(format_datetime(when, pattern, tzinfo=when.tzinfo, locale=language))


def stamp(when: dt.datetime, language: str) -> str:
    """``when`` as a workbook of ``language`` writes its stamps: ``2026-12-06 10:05:00``;
    ``06/12/2026 10:05:00`` in French."""
    return when.strftime(translate_in("strftime", STAMP_FORMAT, language))

