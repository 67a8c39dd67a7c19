"""``-v`` / ``--verbose``, on every command: xlstock's own logs on stderr.

``-v`` shows what the workbook layer and the connectors do at INFO (each request to the
shop, with its answer and time; the workbook opened and saved), ``-vv`` adds DEBUG (the
sheet cache, retries, a keyring look-up). Only the ``xlstock`` loggers are shown: the
libraries' own debug lines (urllib3's, for one) can carry an address or a header that
xlstock does not control. Every line goes through :class:`RedactingFormatter`, so that
a token or a password never reaches the screen or a log file, whatever a message holds.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

LOGGER = "xlstock"
HANDLER_NAME = "xlstock-verbose"
FORMAT = "xlstock %(levelname)s %(name)s: %(message)s"
SECRET_VARIABLES = ("XLSTOCK_TOKEN", "XLSTOCK_SMTP_PASSWORD")
"""The environment variables whose values are secrets (the API token, the SMTP
password): taken out of every line, wherever they appear."""
_SECRET_SHAPES = (
    r"(?i)(\b(?:bearer|basic)\s+|\b[\w-]*(?:token|secret|password|passwd|consumer_key|api_?key)"
    r"[\w-]*"
    r"""["']?\s*[=:]\s*["']?)[^\s"'&,;)]+""")
"""A secret by its shape: what follows ``Bearer``/``Basic``, or ``token=``, ``secret:``,
``password=``, ``consumer_key=``, ``X-Shopify-Access-Token:``... (compiled on the first
line shown, not when a command starts)."""
REDACTED = "***"


def redact(text: str) -> str:
    """``text`` with every secret xlstock can recognise replaced by ``***``."""
    for variable in SECRET_VARIABLES:
        secret = os.environ.get(variable, "").strip()
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return re.sub(_SECRET_SHAPES, lambda match: match.group(1) + REDACTED, text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose lines (tracebacks included) hold no secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def level_for(count: int) -> int:
    """The logging level of ``-v`` given ``count`` times (0: warnings only)."""
    return {0: logging.WARNING, 1: logging.INFO}.get(count, logging.DEBUG)


def show_logs(count: int) -> Callable[[], None]:
    """xlstock's loggers on stderr at the level of ``count`` times ``-v``. Returns what
    puts logging back as it was (the command calls it when it ends); a second call
    while the first holds only lowers the level."""
    logger = logging.getLogger(LOGGER)
    level = min(level_for(count), logger.getEffectiveLevel())
    if any(h.get_name() == HANDLER_NAME for h in logger.handlers):
        logger.setLevel(level)
        return lambda: None
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(RedactingFormatter(FORMAT))
    was = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def put_back() -> None:
        logger.removeHandler(handler)
        logger.setLevel(was)

    return put_back


def chosen_level() -> int:
    """The level ``-v`` chose for xlstock's loggers (WARNING when it was not given)."""
    return logging.getLogger(LOGGER).getEffectiveLevel()


def _given(ctx: click.Context, param: click.Parameter, count: Any) -> None:
    if count:
        ctx.call_on_close(show_logs(count))


def verbose_option() -> click.Option:
    """A fresh ``-v``/``--verbose`` option (click wants one object per command)."""
    return click.Option(
        ["-v", "--verbose"], count=True, expose_value=False, is_eager=True,
        callback=_given,
        help="Show xlstock's logs on stderr: the workbook's and the shop's (-vv: in "
             "detail). Tokens and passwords are never shown.")


def every_command(command: click.Command) -> Iterator[click.Command]:
    """``command`` and, for a group, every command under it."""
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from every_command(sub)


def add_verbose_option(root: click.Command) -> None:
    """``-v``/``--verbose`` on ``root`` and every command under it."""
    for command in every_command(root):
        if not any("--verbose" in getattr(p, "opts", ()) for p in command.params):
            command.params.append(verbose_option())
