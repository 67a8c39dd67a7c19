"""The ``xlstock`` command line: thin click commands over :mod:`xlstock.actions`.

Every command opens what it needs, calls one action, prints its report, and turns an
:class:`~xlstock.errors.XlstockError` or a blocked report into its message on stderr
and the contract's exit status (:mod:`xlstock.cli.exits`, the one place that decides
it). The commands live by what they work on:

- :mod:`~xlstock.cli.workbook_commands`: ``new``, ``init``, ``buttons``, ``sync``, ``preview``,
  ``publish``, ``validate`` and ``demo`` (the merchant's workbook);
- :mod:`~xlstock.cli.server_commands`: ``serve``, ``shop add`` and ``order`` (the stock
  service and its storefront);
- :mod:`~xlstock.cli.account_commands`: ``account add`` (merchants' online accounts).

Importing this package stays cheap: each command imports the workbook layer, the
client or the web parts only when it runs, so a missing ``server`` extra fails only
``serve``, with the ``pip install`` that fixes it.
"""

from __future__ import annotations

import click

from xlstock import __version__
from xlstock.cli import account_commands, click_texts, server_commands, workbook_commands
from xlstock.cli.verbosity import add_verbose_option

click_texts.speak_through_xlstock()  # click's usage errors in the merchant's language too


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xlstock")
def main() -> None:
    """Keep shop stock in Excel: sync live levels, edit, preview, publish.

    \b
    The daily loop:
      xlstock sync stock.xlsx      # pull today's live levels
      (type a delivery into Received, or a count into New level)
      xlstock preview stock.xlsx   # see what would change
      xlstock publish stock.xlsx   # upload the stock file; online sales are kept

    The API token comes from XLSTOCK_TOKEN or the system keyring (service "xlstock",
    user = the shop URL); it is never stored in the workbook.
    """


for _command in (
    workbook_commands.new,
    workbook_commands.init,
    workbook_commands.buttons,
    workbook_commands.sync,
    workbook_commands.preview,
    workbook_commands.publish,
    workbook_commands.undo,
    workbook_commands.history,
    workbook_commands.validate,
    server_commands.order,
    workbook_commands.demo,
    server_commands.serve_command,
    server_commands.shop_group,
    account_commands.account_group,
):
    main.add_command(_command)
add_verbose_option(main)

__all__ = ["main"]
