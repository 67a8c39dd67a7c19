"""The stock service's commands: ``xlstock serve``, ``xlstock shop add`` and
``xlstock order`` (a storefront sale, through the service).

Thin: each builds the library object and calls one function. ``serve`` imports the
web parts (the ``server`` extra) only when run, so that ``xlstock shop add`` and the
rest of the CLI work without Flask and waitress.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from xlstock.cli.exits import reports_errors, reports_errors_and_ctrl_c
from xlstock.cli.reporting import quiet_option
from xlstock.cli.verbosity import RedactingFormatter, chosen_level
from xlstock.errors import UsageError
from xlstock.i18n import _
from xlstock.model import is_loopback_host

if TYPE_CHECKING:
    from xlstock.server.mail import MailSettings

DEFAULT_DB = "xlstock-shop.db"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WORKERS_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class WorkersParam(click.ParamType):
    """``--workers``: a number of processes, or ``auto`` (or 0): one per core."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number = value
        elif str(value).strip().lower() == "auto":
            number = 0
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of workers; pass a number such as "
                          "2, or auto (one per core)", param, ctx)
        if not 0 <= number <= 256:
            self.fail(f"{number} workers: pass 1 to 256, or auto (one per core)", param, ctx)
        if number == 0:
            from xlstock.server.workers import cores

            number = cores()
        return number


class DatabaseParam(click.ParamType):
    """``--db``: a ``postgresql://`` URL (kept as text) or an SQLite file (a path)."""

    name = "FILE|URL"

    def __init__(self) -> None:
        self._file = click.Path(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str | Path:
        from xlstock.server.postgres import is_postgres_url

        if is_postgres_url(value):
            return str(value)
        return self._file.convert(value, param, ctx)


db_option = click.option(
    "--db", "db_path", type=DatabaseParam(),
    default=DEFAULT_DB, show_default=True,
    help="The stock database: an SQLite file (created on first use), or a PostgreSQL "
         "URL postgresql://USER@HOST:PORT/NAME for several service processes on one "
         "database (the tables are created on first use).",
)


def chatter(quiet: bool) -> Any:
    """``click.echo``, or nothing with ``-q``."""
    return (lambda *args, **kwargs: None) if quiet else click.echo


def describe_db(db_path: str | Path) -> str:
    """``--db`` for messages: a URL without its password."""
    from xlstock.server.postgres import redact

    return redact(str(db_path))


@click.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Keep the loopback address unless a reverse proxy "
                   "with HTTPS stands in front.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--connections", type=click.IntRange(1, 100_000), default=None,
              help="Open connections at most (per worker); at it, a new client closes the "
                   "connection idle the longest  [default: 1000; 500 on Windows]")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Requests served at once, per worker.")
@click.option("--workers", type=WorkersParam(), default="1", show_default=True,
              metavar="N|auto",
              help="Service processes sharing the port and the database, to use every "
                   "core: a number, or 'auto' (or 0) for one per core. --connections and "
                   "--threads are per worker; a worker that dies is replaced. Not on "
                   "Windows (docs/deploy.md says how many).")
@click.option("--idle-timeout", type=click.IntRange(1, 3600), default=15, show_default=True,
              help="Seconds a connection may stay idle between requests.")
@click.option("--header-timeout", type=click.FloatRange(0.1, 3600), default=10.0,
              show_default=True, help="Seconds a request's headers may take to arrive.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=60.0,
              show_default=True, help="Seconds a whole request (headers and body) may take "
                                      "to arrive.")
@click.option("--daily-quota", type=click.IntRange(1, 1_000_000), default=256,
              show_default=True, help="MiB one shop may store in a day (UTC); beyond it, its "
                                      "publishes and orders are refused until midnight.")
@click.option("--smtp-host", metavar="HOST",
              help="SMTP server for the low stock e-mails (none: no e-mail is sent).")
@click.option("--smtp-port", type=click.IntRange(1, 65535), default=None,
              help="Its port  [default: 587 with --smtp-starttls, else 25]")
@click.option("--smtp-starttls", is_flag=True,
              help="Encrypt the connection to the SMTP server with STARTTLS.")
@click.option("--smtp-user", metavar="USER",
              help="Sign in to the SMTP server as USER, with the password in the "
                   "environment variable XLSTOCK_SMTP_PASSWORD.")
@click.option("--mail-from", metavar="ADDRESS",
              help="The e-mails' sender address  [default: xlstock@ this machine's name]")
@click.option("--low-stock-digest", type=click.IntRange(0, 7 * 24 * 3600), default=3600,
              show_default=True, metavar="SECONDS",
              help="At most one low stock e-mail per shop in this time, gathering the "
                   "products that crossed their threshold meanwhile (0: each at once).")
@click.option("--public-url", metavar="URL",
              help="The service's address as merchants reach it (behind a reverse proxy), "
                   "for the links in the e-mails  [default: the address it listens on]")
@quiet_option
@reports_errors
def serve_command(
    db_path: str | Path, host: str, port: int, connections: int | None, threads: int,
    workers: int, idle_timeout: int, header_timeout: float, request_timeout: float,
    daily_quota: int,
    smtp_host: str | None, smtp_port: int | None, smtp_starttls: bool,
    smtp_user: str | None, mail_from: str | None, low_stock_digest: int,
    public_url: str | None, quiet: bool,
) -> None:
    """Run the stock service: the shop's online side, on this machine.

    It holds the live levels, takes storefront orders, answers Sync and accepts Publish
    (protocol: docs/protocol.md). One log line per request goes to stderr. Stop it with
    Ctrl-C or SIGTERM. To serve other computers, put an HTTPS reverse proxy in front
    (docs/deploy.md).

    \b
    Example:
      xlstock shop add https://shop.example --db shop.db --catalogue products.csv
      xlstock serve --db shop.db
    """
    from xlstock.server.runner import ServerSettings, serve

    options = {"connections": connections} if connections is not None else {}
    mail = _mail_settings(smtp_host, smtp_port, smtp_starttls, smtp_user, mail_from,
                          low_stock_digest, public_url)
    settings = ServerSettings(
        threads=threads, idle_timeout=idle_timeout, header_timeout=header_timeout,
        request_timeout=request_timeout, daily_quota=daily_quota * 1024 * 1024, mail=mail,
        **options,
    )
    _configure_logging(quiet, workers=workers)
    if not is_loopback_host(host):
        click.echo(_(
            "Warning: listening on {host}: tokens and levels travel unencrypted over plain "
            "HTTP; put an HTTPS reverse proxy in front (docs/deploy.md).", host=host), err=True)
    if workers == 1:
        serve(db_path, host=host, port=port, settings=settings)
    else:
        from xlstock.server.workers import serve_workers

        serve_workers(db_path, host, port, workers=workers, settings=settings)


def _mail_settings(smtp_host: str | None, smtp_port: int | None, smtp_starttls: bool,
                   smtp_user: str | None, mail_from: str | None, low_stock_digest: int,
                   public_url: str | None) -> MailSettings | None:
    """The low stock e-mails' settings from ``serve``'s options (``None``: no e-mails)."""
    from xlstock.server.mail import PASSWORD_VARIABLE, MailSettings

    if not smtp_host:
        if smtp_port or smtp_starttls or smtp_user or mail_from:
            raise UsageError(_("--smtp-port, --smtp-starttls, --smtp-user and --mail-from "
                               "need --smtp-host, the SMTP server to send the low stock "
                               "e-mails through"))
        return None
    _check_addresses(mail_from, public_url)
    password = os.environ.get(PASSWORD_VARIABLE)
    if smtp_user and not password:
        raise UsageError(_("--smtp-user {user} needs its password in the environment "
                           "variable {variable}; set it and start again", user=smtp_user,
                           variable=PASSWORD_VARIABLE))
    return MailSettings(
        smtp_host=smtp_host, smtp_port=smtp_port or (587 if smtp_starttls else 25),
        starttls=smtp_starttls, user=smtp_user, password=password,
        mail_from=mail_from or "", digest_seconds=low_stock_digest,
        service_url=public_url or "")


def _check_addresses(mail_from: str | None, public_url: str | None) -> None:
    if mail_from and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", mail_from):
        raise UsageError(_("--mail-from {value} is not an e-mail address; write it like "
                           "stock@shop.example", value=repr(mail_from)))
    if public_url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", public_url):
        raise UsageError(_("--public-url {value} is not a web address; write it like "
                           "https://stock.example.com", value=repr(public_url)))


def _configure_logging(quiet: bool = False, *, workers: int = 1) -> None:
    """One line per request on stderr; with ``quiet``, warnings and errors only. With
    several workers each line names the process that wrote it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT if workers == 1 else WORKERS_FORMAT))
    handler.set_name("xlstock-serve")
    for name in ("xlstock.server", "waitress"):
        logger = logging.getLogger(name)
        logger.setLevel(min(logging.WARNING if quiet else logging.INFO, chosen_level()))
        if not any(h.get_name() == "xlstock-serve" for h in logger.handlers):
            logger.addHandler(handler)
        logger.propagate = False
    # waitress warns "Task queue depth is N" for every request that waits for a thread:
    # under load that is every request, and waiting is what the queue is for.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


@click.group("shop")
def shop_group() -> None:
    """Manage the shops a stock service knows (for ``xlstock serve``)."""


@shop_group.command("add")
@click.argument("shop_url")
@db_option
@click.option("--catalogue", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV of products: columns sku, name, variant, qty (case ignored, other "
                   "columns ignored), or a WooCommerce product export.")
@click.option("--allow-level-changes", is_flag=True,
              help="Load a catalogue that changes most of the shop's existing levels (20 or "
                   "more): a stocktake, not a mistake.")
@click.option("--new-token", is_flag=True,
              help="Print another API token for a shop registered already, also when "
                   "loading a --catalogue (earlier tokens keep working).")
@quiet_option
@reports_errors
def shop_add_command(
    shop_url: str, db_path: str | Path, catalogue: Path | None, allow_level_changes: bool,
    new_token: bool, quiet: bool,
) -> None:
    """Register SHOP_URL with the stock service and print a new API token.

    Loads the products of --catalogue if given. Running it again for the same shop
    updates the listed products: names, variants and levels (the change is kept in the
    history); products missing from the catalogue are kept. Run again without
    --catalogue, or with --new-token, it issues another token (earlier ones keep
    working); with --catalogue alone it makes no new token. A product the file gives no
    quantity for (a WooCommerce export without Stock, or with stock not managed) is
    added at 0 when new and keeps its level otherwise. A catalogue that would change
    most of the existing levels is refused unless --allow-level-changes. It says what it
    did to the levels; a new token is printed alone on the last line.

    \b
    Example:
      xlstock shop add https://shop.example --db shop.db --catalogue products.csv
      export XLSTOCK_TOKEN=$(xlstock shop add https://shop.example --db shop.db | tail -n 1)
    """
    from xlstock.server.catalogue import Catalogue, read_catalogue
    from xlstock.server.storage import StockStore

    loaded = read_catalogue(catalogue) if catalogue is not None else Catalogue()
    store = StockStore(db_path)
    try:
        done = store.register_shop(
            shop_url, loaded.items,
            reference=f"catalogue {catalogue.name}" if catalogue is not None else "catalogue",
            allow_level_changes=allow_level_changes,
            another_token=new_token or catalogue is None,
        )
    finally:
        store.close()
    say = chatter(quiet)
    if done.created:
        say(_("Registered shop {shop} in {db}.", shop=done.shop, db=describe_db(db_path)))
    else:
        say(_("Updated shop {shop} in {db}.", shop=done.shop, db=describe_db(db_path)))
    if catalogue is not None:
        _say_catalogue(say, catalogue, loaded, done)
    say(_("The shop has {count:n} product(s); version {version}.", count=done.products,
          version=done.version))
    if done.token is None:
        say(_("No new API token: the shop's tokens keep working (add --new-token for "
              "another)."))
        return
    say(_("API token (shown once, keep it secret; give it to xlstock as XLSTOCK_TOKEN or in "
          "the system keyring):"))
    click.echo(done.token)


def _say_catalogue(say: Any, catalogue: Path, loaded: Any, done: Any) -> None:
    """What ``shop add --catalogue`` read from the file and did to the levels."""
    read = dict(path=catalogue, kind=loaded.kind, count=len(loaded.items))
    if loaded.without_quantity and loaded.no_quantities:
        say(_("Catalogue {path} ({kind}): {count:n} product(s) read, {missing:n} without a "
              "quantity ({why}).", missing=loaded.without_quantity, why=loaded.no_quantities,
              **read))
    elif loaded.without_quantity:
        say(_("Catalogue {path} ({kind}): {count:n} product(s) read, {missing:n} without a "
              "quantity.", missing=loaded.without_quantity, **read))
    else:
        say(_("Catalogue {path} ({kind}): {count:n} product(s) read.", **read))
    say(_("Levels: {added:n} added (new products), {changed:n} changed, {left:n} left as they "
          "were; {renamed:n} product(s) renamed.", added=len(done.added),
          changed=len(done.levels_changed), left=len(done.levels_left),
          renamed=len(done.renamed)))
    if loaded.without_quantity:
        say(_("Products without a quantity start at 0 when new; existing ones keep their "
              "level."))
    if loaded.skipped:
        say(_("Skipped {count:n} row(s) that hold no stock:", count=len(loaded.skipped)))
        for reason in loaded.skipped:
            say(f"  {reason}")


@click.command()
@click.option("--service", "service_url", required=True, metavar="URL",
              help="Base URL of the stock service.")
@click.option("--shop", "shop_url", required=True, metavar="URL", help="The shop's URL.")
@click.option("--reference", help="The storefront's order number.")
@click.argument("lines", nargs=-1, required=True, metavar="SKU=QTY...")
@quiet_option
@reports_errors_and_ctrl_c
def order(service_url: str, shop_url: str, reference: str | None, lines: tuple[str, ...],
          quiet: bool) -> None:
    """Place a storefront order through the stock service.

    The token comes from XLSTOCK_TOKEN or the keyring, as for the other commands.

    All lines are taken together or not at all: a line short of stock refuses the order.

    \b
    Example:
      XLSTOCK_TOKEN=... xlstock order --service http://127.0.0.1:8765 \\
          --shop https://shop.example woo-hoodie-red=1 woo-cap=2
    """
    from xlstock.actions import shown_version
    from xlstock.remote.client import HttpStockServiceClient

    wanted: dict[str, int] = {}
    for line in lines:
        sku, sep, qty = line.rpartition("=")
        if not sep or not sku.strip() or not re.fullmatch(r"[0-9]{1,12}", qty.strip()) \
                or int(qty) < 1:
            raise UsageError(_("order line {line}: write SKU=QTY with a whole QTY of 1 or more",
                               line=repr(line)))
        wanted[sku.strip()] = wanted.get(sku.strip(), 0) + int(qty)
    with HttpStockServiceClient.from_settings(service_url, shop_url) as service:
        result = service.place_order(wanted, reference=reference)
    say = chatter(quiet)
    for sku, count in wanted.items():
        say(_("{sku}: -{count:n}", sku=sku, count=count))
    say(_("Order placed; the shop is now at version {version}.",
          version=shown_version(result.version)))
