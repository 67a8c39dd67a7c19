"""The workbook commands: ``new``, ``init``, ``buttons``, ``sync``, ``preview``, ``publish``,
``validate`` and ``demo``.

Each opens the workbook (and, online, the stock-service client, with a ``with``),
calls one action and prints its report; :mod:`xlstock.cli.exits` turns errors and
blocked reports into the exit status.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from xlstock import i18n
from xlstock.cli.exits import F, reports_errors_and_ctrl_c
from xlstock.cli.reporting import Progress, format_output, quiet_option
from xlstock.errors import UsageError
from xlstock.i18n import _

if TYPE_CHECKING:
    from xlstock import actions
    from xlstock.remote.client import HttpStockServiceClient
    from xlstock.workbook.layout import Settings


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a command works on a workbook.

    A sheet of 100,000 rows becomes a few million small objects (cells, rows, items),
    and each full collection walks them all: at that size 0.3-0.5 s of a preview went
    to collections that freed nothing. Reference counting still frees every object
    (what a command makes forms no cycles that matter), the command's process ends
    with it, and the collector is back on when the block ends, however it ends."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


@contextlib.contextmanager
def open_workbook(path: str, *, writable: bool = True) -> Iterator[Any]:
    """Open a workbook file with the file adapter (locked while in use when
    ``writable``), the cycle collector paused while it is open
    (:func:`without_cycle_collection`)."""
    from xlstock.workbook.xlsx_file import XlsxFile

    if not Path(path).exists():
        raise UsageError(_(
            "{path}: no such workbook in {folder}; check the folder and the file name, or "
            "create one with `xlstock new {path}`", path=path, folder=Path(path).absolute().parent
        ))
    with without_cycle_collection(), XlsxFile.open(path, writable=writable) as book:
        yield book


@contextlib.contextmanager
def open_online(path: str) -> Iterator[tuple[Any, Settings, HttpStockServiceClient]]:
    """The workbook (as :func:`open_workbook`), its Settings, read once, and the
    stock-service client they name, closed with its HTTP session when the command ends."""
    from xlstock import actions
    from xlstock.workbook import layout

    with open_workbook(path) as book:
        settings = layout.read_settings(book)
        with actions.service_for(settings) as service:
            yield book, settings, service


def print_report(report: actions.Report) -> None:
    """The report on stdout. Rows at fault (preview, validate) are then raised as the
    error they are (a :class:`~xlstock.errors.SheetError`, or a ``ConflictError``): on
    stderr under ``xlstock:``, with the exit status its class has in
    :mod:`xlstock.cli.exits`, the same way as a refused publish."""
    output = format_output(report)
    if output:
        click.echo(output)
    if report.error is not None:
        raise report.error


def speaks_the_workbooks_language(func: F) -> F:
    """The command speaks the workbook's language when the machine asks for none
    (:func:`xlstock.i18n.about_workbook`: no ``XLSTOCK_LANG`` nor locale, as in a
    scheduled job or a Windows terminal), so that a French workbook's messages are
    French; its errors and Ctrl-C included (``func`` reports them)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with i18n.speaking(i18n.machine_language() or _language_of_file(kwargs["path"])):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _language_of_file(path: str) -> str | None:
    """The language of the workbook at ``path`` by its sheets' names, or ``None`` when it
    cannot be read (the command then says why, in English)."""
    from xlstock.workbook.layout import language_of_sheets
    from xlstock.workbook.xlsx_file import sheet_names_in

    try:
        return language_of_sheets(sheet_names_in(path))
    except Exception:  # not a workbook, not there: the command's own open reports it
        return None


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--service", "service_url", metavar="URL",
              help="Base URL of the stock service (Settings: Stock service).")
@click.option("--shop", "shop_url", metavar="URL",
              help="The shop's address as registered with the stock service.")
@click.option("--shopify", "shopify_store", metavar="STORE",
              help="The shop is a Shopify store: its address, STORE.myshopify.com.")
@click.option("--woocommerce", "woocommerce_shop", metavar="URL",
              help="The shop is a WooCommerce shop: its address, https://shop.example.")
@click.option("--location", metavar="NAME",
              help="The Shopify location the workbook keeps (needed when the store has "
                   "several).")
@click.option("--lang", "language", type=click.Choice(i18n.LANGUAGES),
              help="The workbook's language: sheet names, headers, labels, buttons (default: "
                   "the system's, from XLSTOCK_LANG, LC_ALL, LC_MESSAGES or LANG).")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@quiet_option
@reports_errors_and_ctrl_c
def new(path: str, service_url: str | None, shop_url: str | None, shopify_store: str | None,
        woocommerce_shop: str | None, location: str | None, language: str | None,
        force: bool, quiet: bool) -> None:
    """Create a fresh workbook from the template.

    PATH ending in .xlsm gets the Excel buttons (Sync, Preview, Publish).

    \b
    Examples:
      xlstock new stock.xlsx --service https://stock.example --shop https://shop.example
      xlstock new stock.xlsx --shopify mystore.myshopify.com [--location "Main store"]
      xlstock new stock.xlsx --woocommerce https://shop.example
      xlstock new stock.xlsx --lang fr
    """
    target = _new_target(path, force)
    service_url, shop_url, platform = _shop_options(service_url, shop_url, shopify_store,
                                                    woocommerce_shop, location)
    from xlstock.workbook.template import build_workbook, language_from_environment

    language = language or language_from_environment()
    if target.suffix.lower() == ".xlsm":
        from xlstock.macros.install import build_macro_workbook

        build_macro_workbook(target, service_url=service_url, shop_url=shop_url,
                             platform=platform, location=location, language=language)
    else:
        build_workbook(target, service_url=service_url, shop_url=shop_url, platform=platform,
                       location=location, language=language)
    if not quiet:
        click.echo(_("Created {path}. Next: xlstock sync {path}", path=target))


def _new_target(path: str, force: bool) -> Path:
    """The workbook ``new`` creates: named .xlsx or .xlsm, and not there already unless
    ``--force``; a :class:`UsageError` otherwise."""
    target = Path(path)
    if target.suffix.lower() not in (".xlsx", ".xlsm"):
        raise UsageError(_("{path}: name the workbook .xlsx (or .xlsm for Excel buttons)",
                            path=path))
    if target.exists() and not force:
        raise UsageError(_("{path} exists already; pick another name or add --force",
                            path=path))
    return target


def _shop_options(service_url: str | None, shop_url: str | None, shopify_store: str | None,
                  woocommerce_shop: str | None,
                  location: str | None) -> tuple[str | None, str | None, str | None]:
    """The service address, shop address and platform the new workbook keeps, from the
    options naming its shop: ``--woocommerce`` or ``--shopify`` (which name both
    addresses), else ``--service`` and ``--shop``; a :class:`UsageError` for options
    that do not go together."""
    platform = None
    if shopify_store and woocommerce_shop:
        raise UsageError(_("a workbook keeps one shop: give --shopify or --woocommerce"))
    if woocommerce_shop:
        if service_url or shop_url or location:
            raise UsageError(_("--woocommerce names the shop: leave out --service, --shop "
                               "and --location"))
        from xlstock.shops.woocommerce import shop_address
        from xlstock.workbook.layout import WOOCOMMERCE

        service_url = shop_url = shop_address(woocommerce_shop)
        platform = WOOCOMMERCE
    elif shopify_store:
        if service_url or shop_url:
            raise UsageError(_("--shopify names the store: leave out --service and --shop"))
        from xlstock.shops.shopify import store_address
        from xlstock.workbook.layout import SHOPIFY

        service_url = shop_url = store_address(shopify_store)
        platform = SHOPIFY
    elif location:
        raise UsageError(_("--location is for a Shopify store (--shopify STORE)"))
    else:
        service_url, shop_url = _checked_addresses(service_url, shop_url)
    return service_url, shop_url, platform


def _checked_addresses(service_url: str | None,
                       shop_url: str | None) -> tuple[str | None, str | None]:
    """``--service`` and ``--shop`` as the workbook keeps them, or a :class:`UsageError`."""
    if service_url:
        from xlstock.remote.client import check_service_url

        service_url = check_service_url(service_url)
    if shop_url:
        from xlstock.model import ValueProblem, normalise_shop_url

        try:
            shop_url = normalise_shop_url(shop_url)
        except ValueProblem as exc:
            raise UsageError(_("--shop: {problem}", problem=exc)) from exc
    return service_url, shop_url


@click.command("init")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--service", "service_url", metavar="URL",
              help="Base URL of the stock service (Settings: Stock service).")
@click.option("--shop", "shop_url", metavar="URL",
              help="The shop's address as registered with the stock service.")
@click.option("--lang", "language", type=click.Choice(i18n.LANGUAGES),
              help="The language of the sheets added (default: the system's).")
@quiet_option
@reports_errors_and_ctrl_c
def init(path: str, service_url: str | None, shop_url: str | None, language: str | None,
         quiet: bool) -> None:
    """Add the stock sheets to a workbook you already have.

    Sheets Stock, Settings and Log (and xlstock's hidden memory) go after your own
    sheets; everything else in the file stays exactly as it was. A workbook that has
    them already is refused.

    \b
    Example:
      xlstock init shop.xlsx --service https://stock.example --shop https://shop.example
    """
    from xlstock.workbook.template import add_stock_sheets, language_from_environment

    service_url, shop_url = _checked_addresses(service_url, shop_url)
    with open_workbook(path) as book:
        add_stock_sheets(book, service_url=service_url, shop_url=shop_url,
                         language=language or language_from_environment())
    if not quiet:
        click.echo(_("Added sheets Stock, Settings and Log to {path}. Next: type or paste "
                     "your SKUs under SKU on sheet Stock, or run xlstock sync {path}", path=path))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--out", metavar="OUT", type=click.Path(dir_okay=False),
              help="Write to OUT (.xlsm) instead (default: PATH with .xlsm for an .xlsx, "
                   "PATH itself for an .xlsm).")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@quiet_option
@speaks_the_workbooks_language
@reports_errors_and_ctrl_c
def buttons(path: str, out: str | None, force: bool, quiet: bool) -> None:
    """Add the Excel buttons to a workbook, or bring an .xlsm's up to date.

    An .xlsx becomes an .xlsm with the Sync, Preview and Publish buttons; every sheet,
    value and format is kept. An .xlsm gets the installed xlwings' VBA module (run it
    after upgrading xlwings) and any missing button; your own macros are kept.

    \b
    Example:
      xlstock buttons stock.xlsx      # writes stock.xlsm
      xlstock buttons stock.xlsm      # after pip install --upgrade xlwings
    """
    from xlstock.macros.install import install_buttons

    report = install_buttons(path, out, force=force)
    for line in [] if quiet else report.lines():
        click.echo(line)


def _workbook_command(func: F) -> F:
    """The PATH argument and --quiet flag every online command shares, and its language
    (:func:`speaks_the_workbooks_language`)."""
    func = quiet_option(speaks_the_workbooks_language(func))
    return click.argument("path", type=click.Path(dir_okay=False))(func)


_strict_option = click.option(
    "--strict", is_flag=True, default=None,
    help="Use policy strict for this run (a row changed online is a conflict).",
)


def _run_online(action: Callable[..., actions.Report], path: str, quiet: bool,
                **options: Any) -> None:
    """Run an online action on the workbook at ``path`` with its client, progress on
    stderr unless ``quiet``, and print its report."""
    progress = Progress(quiet)
    with open_online(path) as (book, settings, service):
        if hasattr(service, "progress"):  # a platform's connector: pages, waits, calls
            service.progress = lambda message: progress(message, None)
        report = action(book, service, settings=settings, progress=progress, **options)
    progress.close()
    print_report(report)


@click.command()
@_workbook_command
@click.option("--allow-mass-change", is_flag=True,
              help="Go on even if the shop seems to have lost most of its products.")
@reports_errors_and_ctrl_c
def sync(path: str, quiet: bool, allow_mass_change: bool) -> None:
    """Pull the live stock levels into sheet Stock.

    Online takes the live levels, new SKUs are appended, vanished ones are flagged;
    Received, New level and your own columns are kept.

    \b
    Example:
      XLSTOCK_TOKEN=... xlstock sync stock.xlsx
    """
    from xlstock import actions

    _run_online(actions.sync, path, quiet, allow_mass_change=allow_mass_change)


@click.command()
@_workbook_command
@_strict_option
@reports_errors_and_ctrl_c
def preview(path: str, quiet: bool, strict: bool | None) -> None:
    """Show what Publish would send, checked against the live levels; upload nothing.

    Writes column Change and Status.

    \b
    Example:
      xlstock preview stock.xlsx
    """
    from xlstock import actions

    _run_online(actions.preview, path, quiet, strict=strict or None)


@click.command()
@_workbook_command
@_strict_option
@click.option("--allow-mass-change", is_flag=True,
              help="Allow a publish that changes most of the shop's levels at once.")
@reports_errors_and_ctrl_c
def publish(path: str, quiet: bool, strict: bool | None, allow_mass_change: bool) -> None:
    """Upload the stock file (only the stock levels), keeping online sales.

    Each level is planned against the live level at publish time (policy rebase:
    a counted New level is moved by what sold online since Sync). Any error or
    conflict publishes nothing.

    \b
    Example:
      xlstock publish stock.xlsx
      xlstock publish stock.xlsx --strict
    """
    from xlstock import actions

    _run_online(actions.publish, path, quiet, strict=strict or None,
                allow_mass_change=allow_mass_change)


@click.command()
@_workbook_command
@reports_errors_and_ctrl_c
def validate(path: str, quiet: bool) -> None:
    """Check sheet Stock offline, without the stock service; writes nothing.

    \b
    Example (in a scheduled job, before publish):
      xlstock validate stock.xlsx && xlstock publish stock.xlsx
    """
    from xlstock import actions

    del quiet  # validate says nothing on stderr but errors: -q is taken, for scripts
    with open_workbook(path, writable=False) as book:
        report = actions.validate(book)
    print_report(report)


@click.command()
@_workbook_command
@click.option("--publish", "publish_key", metavar="ID",
              help="Undo this publish (its key, or the start of it: see xlstock history) "
                   "instead of the last one.")
@click.option("--preview", is_flag=True, help="Show what the undo would do; send nothing.")
@click.option("--yes", is_flag=True, help="Send without asking (scripts).")
@click.option("--partial", is_flag=True,
              help="Undo the rows that can be undone when some cannot (below zero, gone).")
@_strict_option
@reports_errors_and_ctrl_c
def undo(path: str, quiet: bool, publish_key: str | None, preview: bool, yes: bool,
         partial: bool, strict: bool | None) -> None:
    """Take back the last publish made from this workbook, keeping the sales since.

    A delivery of d is taken back by removing d units; a count that moved a level from
    a to b moves it back by a - b, so whatever sold since the publish stays sold. It is
    checked against the live levels, shown, and sent once you confirm (--yes in a
    script). A publish is undone once; xlstock history lists them.

    \b
    Examples:
      xlstock undo stock.xlsx --preview
      xlstock undo stock.xlsx
      xlstock undo stock.xlsx --publish 3f2a9c --yes
    """
    from xlstock import actions

    confirm: Callable[[str], bool] | None = None
    if not preview and not yes:
        if not sys.stdin.isatty():
            raise UsageError(_("undo asks before it sends: run it in a terminal, or add --yes "
                               "(--preview shows what it would do)"))
        confirm = _ask

    _run_online(actions.undo, path, quiet, publish_key=publish_key, preview=preview,
                partial=partial, strict=strict or None, confirm=confirm)


def _ask(question: str) -> bool:
    return click.confirm(question, default=False, err=True)


@click.command("history")
@_workbook_command
@reports_errors_and_ctrl_c
def history(path: str, quiet: bool) -> None:
    """List the publishes made from this workbook, newest first (offline).

    \b
    Example:
      xlstock history stock.xlsx
    """
    from xlstock import actions

    del quiet
    with open_workbook(path, writable=False) as book:
        records = actions.history(book)
    if not records:
        click.echo(_("No publish is remembered in this workbook yet."))
    for record in records:
        click.echo(_history_line(record))


def _history_line(record: Any) -> str:
    """One publish of ``xlstock history``, in the language's numbers and words."""
    counts = dict(key=record.key, at=_stamp(record.at), rows=record.rows, units=record.units)
    undone = dict(undone_at=_stamp(record.undone_at or ""), undone_by=record.undone_by)
    if record.undo_of and record.undone_at:
        return _("{key}  {at}  {rows:n} row(s), {units:n} unit(s)  undo of publish {undo_of}, "
                 "undone at {undone_at} (by {undone_by})", undo_of=record.undo_of,
                 **undone, **counts)
    if record.undo_of:
        return _("{key}  {at}  {rows:n} row(s), {units:n} unit(s)  undo of publish {undo_of}",
                 undo_of=record.undo_of, **counts)
    if record.undone_at:
        return _("{key}  {at}  {rows:n} row(s), {units:n} unit(s)  publish, undone at "
                 "{undone_at} (by {undone_by})", **undone, **counts)
    return _("{key}  {at}  {rows:n} row(s), {units:n} unit(s)  publish", **counts)


def _stamp(stamp: str) -> str:
    """A stored ISO time as the language writes a date and time (06/12/2026 10:05 in
    French); a stamp that is not one, as it is."""
    from xlstock import i18n

    try:
        return i18n.date_time(stamp)
    except ValueError:
        return stamp


@click.command()
@click.option("--serve", "keep_serving", is_flag=True,
              help="Keep the embedded stock service running afterwards, to try the workbook "
                   "by hand (Ctrl-C stops it).")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=".",
              help="Where to write the demo workbook (default: the current folder).")
@quiet_option
@reports_errors_and_ctrl_c
def demo(keep_serving: bool, folder: str, quiet: bool) -> None:
    """Run the whole daily loop against an embedded stock service.

    Starts a stock service on a free loopback port with a sample shop, creates a
    workbook, syncs, records a delivery and a stocktake, places an online sale,
    previews and publishes, then prints what happened.

    \b
    Example:
      xlstock demo
      xlstock demo --serve
    """
    from xlstock.cli.demo import run_demo

    run_demo(Path(folder), keep_serving=keep_serving,
             echo=(lambda line: None) if quiet else click.echo)
