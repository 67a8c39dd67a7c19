"""The account pages' words: the translations are in the gettext catalogue
(``xlstock/locale/<language>/LC_MESSAGES/xlstock.po``), shared with the rest of
xlstock; see :mod:`xlstock.i18n`.

The English text is the key: pages call ``t("Sign in")`` and get it back in the page's
language. The labels the issue names are part of the interface (docs/account.md lists
them with their French); the catalogue's test checks that every text has its French.
"""

from __future__ import annotations

from xlstock import i18n
from xlstock.i18n import N_

LANGUAGES = i18n.LANGUAGES
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}

# Texts the pages and templates choose by a key or from a list (t(label)): marked here
# so that the catalogue has them.
CHOSEN_BY_KEY = (
    N_('You are signed out.'),
    N_('The two passwords differ.'),
    N_('The password needs at least {count} characters.'),
    N_('The password is too long (at most {count} characters).'),
    N_('Choose a password other than the one-time password.'),
    N_('Your password is saved.'),
    N_('The shop {url} is registered. Next: switch on the automatic stock level update on '
       'the Services page.'),
    N_('Your account now holds the shop {url}.'),
    N_('Your stock is now under {url}; the old address is no longer registered.'),
    N_('Nothing changed.'),
    N_('“{url}” is not a web address; write it like https://myshop.example.'),
    N_('Another account holds {url}.'),
    N_("{url} was registered with xlstock shop add. To claim it, enter in “API token of the "
       "shop” a token that command printed for it (ask the stock service's operator)."),
    N_('{url} is registered already, with stock of its own; your stock cannot move onto it.'),
    N_('Give a whole number from 0 to 1,000,000,000.'),
    N_('Saved.'),
    N_('The token is revoked: the stock service refuses it from now on.'),
    N_('First'),
    N_('Previous'),
    N_('Next'),
    N_('Last'),
    N_('Order'),
    N_('Catalogue'),
)


def french() -> dict[str, str]:
    """Every French text of the catalogue, by its English."""
    found = i18n.catalogue(i18n.FRENCH)
    return {k: v for k, v in getattr(found, "_catalog", {}).items()
            if isinstance(k, str) and k}
