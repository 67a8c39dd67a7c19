"""``xlstock account add``: create a merchant's online account (or reset its password).

Thin, like :mod:`xlstock.cli.server_commands`, and without the web parts: it works where
Flask and waitress are not installed.
"""

from __future__ import annotations

from pathlib import Path

import click

from xlstock.cli.exits import reports_errors
from xlstock.cli.reporting import quiet_option
from xlstock.cli.server_commands import chatter, db_option, describe_db
from xlstock.i18n import _


@click.group("account")
def account_group() -> None:
    """Manage the merchants' online accounts (the pages under /account/ of ``xlstock serve``)."""


@account_group.command("add")
@click.argument("email")
@db_option
@quiet_option
@reports_errors
def account_add_command(email: str, db_path: str | Path, quiet: bool) -> None:
    """Create the online account EMAIL and print a one-time password.

    The merchant signs in at /account/ of the stock service with EMAIL and this
    password, chooses their own password, then registers the shop URL, switches
    automatic stock updates on and creates an API token. Running it again for an
    existing account gives it a new one-time password (and signs it out everywhere):
    the way back in after a forgotten password. The password is printed alone on the
    last line.

    \b
    Example:
      xlstock account add merchant@myshop.example --db shop.db
      xlstock serve --db shop.db    # then open http://127.0.0.1:8765/account/
    """
    from xlstock.server.accounts import AccountStore
    from xlstock.server.storage import StockStore

    store = StockStore(db_path)
    try:
        address, password, created = AccountStore(store).add_account(email)
    finally:
        store.close()
    say = chatter(quiet)
    if created:
        say(_("Created the online account {email} in {db}.", email=address,
              db=describe_db(db_path)))
    else:
        say(_("The online account {email} has a new one-time password (it was signed out "
              "everywhere).", email=address))
    say(_("Sign in at /account/ of the stock service (e.g. http://127.0.0.1:8765/account/) "
          "with this one-time password; the first sign-in asks for a new one:"))
    click.echo(password)
