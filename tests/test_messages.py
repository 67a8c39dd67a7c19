"""The messages' catalogues (issue 20, points 3 and 4): every text a merchant can see
has its French, with the same placeholders, and the compiled catalogue that ships is
the one the .po file gives."""

from __future__ import annotations

import datetime as dt
import importlib.util
import pickle
import sys
from pathlib import Path

import pytest

from xlstock import i18n
from xlstock.i18n import _, _n

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("i18n_script", ROOT / "scripts" / "i18n.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_message_has_its_french_with_the_same_placeholders():
    found = _script().check()
    assert found == [], "\n".join(found[:50]) + "\n(fix: python scripts/i18n.py, then translate)"


def test_the_check_finds_a_missing_translation_and_a_placeholder_that_differs():
    script = _script()
    from babel.messages.catalog import Catalog

    template = Catalog()
    template.add("Row {row}: {sku} is unknown", locations=[("x.py", 1)])
    template.add("Saved.", locations=[("x.py", 2)])
    catalog = Catalog(locale="fr")
    catalog.add("Row {row}: {sku} is unknown", "Ligne {ligne} : {sku} est inconnu")
    found = script.problems(catalog, template, "fr")
    assert any("placeholders" in line and "'ligne:'" in line for line in found)
    assert any("'Saved.'" in line and "no translation" in line for line in found)


@pytest.mark.parametrize(("environ", "language"), [
    ({}, "en"),
    ({"LANG": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "fr_FR.UTF-8", "LC_ALL": "en_GB.UTF-8"}, "en"),
    ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "fr_CA.UTF-8"}, "fr"),
    ({"LANG": "fr_FR.UTF-8", "XLSTOCK_LANG": "en"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LANGUAGE": "fr:en", "LANG": "en_US.UTF-8"}, "fr"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
])
def test_the_language_comes_from_the_locale(environ, language):
    assert i18n.system_language(environ) == language


@pytest.mark.parametrize(("environ", "language"), [
    ({}, None), ({"LANG": "C.UTF-8"}, None), ({"LANG": "POSIX", "LC_ALL": ""}, None),
    ({"LANG": "fr_FR.UTF-8"}, "fr"), ({"XLSTOCK_LANG": "en", "LANG": "C"}, "en"),
])
def test_a_machine_may_ask_for_no_language(environ, language):
    """Then a command on a workbook speaks the workbook's (tests/test_workbook_language)."""
    assert i18n.machine_language(environ) == language


@pytest.mark.parametrize(("lcid", "language"), [
    (0x040C, "fr"), (0x0C0C, "fr"), (0x080C, "fr"), (0x0409, "en"), (0x0407, "en"),
    (0x7FFF_FFFF, None),
])
def test_a_windows_language_id_gives_its_language(lcid, language):
    """What Windows' GetUserDefaultUILanguage answers (French (France), French (Canada),
    French (Belgium); English (US); German, which xlstock speaks as English)."""
    assert i18n.language_of_lcid(lcid) == language


def test_numbers_and_dates_follow_the_language():
    assert i18n.number(100000, "en") == "100,000"
    assert i18n.number(100000, "fr") == "100\u202f000"
    assert i18n.date(dt.date(2026, 12, 6), "fr") == "06/12/2026"
    assert i18n.date(dt.date(2026, 12, 6), "en") == "2026-12-06"
    assert i18n.date_time("2026-12-06T10:05:00Z", "fr") == "06/12/2026 10:05"


def test_a_message_is_shown_in_the_current_language_and_rendered_in_another():
    with i18n.speaking("en"):
        message = _("Sign in")
        counted = _n("{count:n} product", "{count:n} products", 1000, count=1000)
    assert message == "Sign in"
    assert message.render("fr") == "Se connecter"
    assert counted == "1,000 products"
    with i18n.speaking("fr"):
        assert _("Sign in") == "Se connecter"
        assert str(i18n.render(message, "fr")) == "Se connecter"
    assert i18n.render("plain text", "fr") == "plain text"


def test_a_message_crosses_a_pickle_whole():
    with i18n.speaking("en"):
        message = _("Signed in as {email}", email="a@b.example")
    again = pickle.loads(pickle.dumps(message))
    assert again == message and again.render("fr") == "Connecté en tant que a@b.example"


def test_the_wheel_ships_the_compiled_catalogue():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "locale/*/LC_MESSAGES/*.mo" in data["tool"]["setuptools"]["package-data"]["xlstock"]
    assert (ROOT / "xlstock/locale/fr/LC_MESSAGES/xlstock.mo").stat().st_size > 1000
