"""``-v`` / ``--verbose`` on every command: xlstock's logs on stderr, never a secret."""

from __future__ import annotations

import logging

import click
import pytest
from support.shopkit import Shop

from xlstock.cli import main
from xlstock.cli.verbosity import HANDLER_NAME, LOGGER, redact
from xlstock.remote import client as client_module
from xlstock.remote.client import HttpStockServiceClient


def _commands(command: click.Command,
              path: str = "xlstock") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += _commands(sub, f"{path} {name}")
    return found


def test_every_command_takes_verbose() -> None:
    commands = _commands(main)
    names = [name for name, _ in commands]
    assert {"xlstock sync", "xlstock publish", "xlstock serve", "xlstock shop add",
            "xlstock account add", "xlstock new", "xlstock undo"} <= set(names)
    without = [name for name, command in commands
               if not any(isinstance(p, click.Option) and {"-v", "--verbose"} <= set(p.opts)
                          and p.count for p in command.params)]
    assert not without, f"no -v/--verbose on: {', '.join(without)}"


@pytest.fixture
def shop(stock_service, tmp_path) -> Shop:
    shop = Shop(stock_service, tmp_path)
    shop.new()
    return shop


def _verbose_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger(LOGGER).handlers if h.get_name() == HANDLER_NAME]


def test_verbose_shows_the_workbook_and_client_logs(shop: Shop) -> None:
    quiet = shop.run("sync", str(shop.workbook))
    assert "xlstock INFO" not in quiet.stderr
    level = logging.getLogger(LOGGER).level
    loud = shop.run("sync", str(shop.workbook), "-v")
    assert f"xlstock INFO xlstock.workbook.xlsx_file: opened {shop.workbook}" in loud.stderr
    assert f"xlstock INFO xlstock.workbook.xlsx_file: saved {shop.workbook}" in loud.stderr
    assert "xlstock INFO xlstock.remote: GET " in loud.stderr
    assert "xlstock DEBUG" not in loud.stderr
    assert not _verbose_handlers(), "the command left its handler behind"
    assert logging.getLogger(LOGGER).level == level
    before_the_command = shop.run("-v", "validate", str(shop.workbook))
    assert "xlstock.workbook.xlsx_file: opened" in before_the_command.stderr


def test_double_verbose_shows_debug_lines(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    health = HttpStockServiceClient.read_levels

    def noted(self: HttpStockServiceClient, *args: object, **kwargs: object) -> object:
        client_module.log.debug("reading the levels of %s", self.shop_url)
        return health(self, *args, **kwargs)

    monkeypatch.setattr(HttpStockServiceClient, "read_levels", noted)
    assert "xlstock DEBUG" not in shop.run("sync", str(shop.workbook), "-v").stderr
    assert f"xlstock DEBUG xlstock.remote: reading the levels of {shop.url}" in shop.run(
        "sync", str(shop.workbook), "-vv").stderr


def test_no_token_reaches_the_log(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a careless log line that holds the token (or a traceback that does) shows
    it as ***."""
    exchange = HttpStockServiceClient._exchange

    def careless(self: HttpStockServiceClient, *args: object, **kwargs: object) -> object:
        client_module.log.info("sending with %s, Authorization: Bearer %s, ?token=%s",
                               self._token, self._token, self._token)
        try:
            raise RuntimeError(f"failed with {self._token}")
        except RuntimeError:
            client_module.log.debug("a traceback", exc_info=True)
        return exchange(self, *args, **kwargs)

    monkeypatch.setattr(HttpStockServiceClient, "_exchange", careless)
    result = shop.run("sync", str(shop.workbook), "-vv")
    assert "sending with ***, Authorization: Bearer ***, ?token=***" in result.stderr
    assert "RuntimeError: failed with ***" in result.stderr
    assert shop.token not in result.stderr + result.stdout


@pytest.mark.parametrize(("line", "shown"), [
    ("Authorization: Bearer abc.DEF-123", "Authorization: Bearer ***"),
    ("auth Basic dXNlcjpwYXNz here", "auth Basic *** here"),
    ("GET /x?consumer_key=ck_1&consumer_secret=cs_2",
     "GET /x?consumer_key=***&consumer_secret=***"),
    ("{'X-Shopify-Access-Token': 'shpat_99'}", "{'X-Shopify-Access-Token': '***'}"),
    ("password=hunter2 user=me", "password=*** user=me"),
    ("no API token for shop https://a.example: set it",
     "no API token for shop https://a.example: set it"),
])
def test_redact_takes_out_secrets_by_their_shape(line: str, shown: str) -> None:
    assert redact(line) == shown


def test_redact_takes_out_the_token_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLSTOCK_TOKEN", "s3cr3t-value")
    assert redact("sent s3cr3t-value twice: s3cr3t-value") == "sent *** twice: ***"
