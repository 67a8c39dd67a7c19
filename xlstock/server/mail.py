"""Low stock by e-mail (issue 24), its sending: the SMTP settings of ``xlstock serve``,
the digest's text in the account's language, and the background thread that drains the
queue :mod:`xlstock.server.lowstock` keeps in the database.

Nothing here runs in a request: an order or a publish only records its crossings, and
this thread mails them after, so that a slow or absent SMTP server delays no order.
A send that fails hands its digest back to be tried again within
:data:`RETRY_SECONDS` (and the next poll), so that mail goes out within a minute of the SMTP server
coming back. Sending uses the standard library (:mod:`smtplib`, :mod:`email`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from xlstock.i18n import number, translate
from xlstock.server.lowstock import (
    Digest,
    claim_digest,
    finish_digest,
    read_digest,
    release_digest,
    shops_waiting,
)
from xlstock.server.storage import StockStore, format_time

log = logging.getLogger("xlstock.server")

DEFAULT_DIGEST_SECONDS = 3600
PASSWORD_VARIABLE = "XLSTOCK_SMTP_PASSWORD"
POLL_SECONDS = 5.0
"""How often the sender looks for crossings to mail."""
RETRY_SECONDS = 15
"""The wait before a digest that could not be sent is tried again."""
LEASE_SECONDS = 300
"""How long a claimed digest stays the claimant's (a sender that died lets it go)."""


@dataclass(frozen=True)
class MailSettings:
    """Where and how the service sends its e-mails.

    ``smtp_host``/``smtp_port``: the SMTP server; ``starttls``: upgrade the connection
    before signing in; ``user``/``password``: sign in with them (the password comes from
    :data:`PASSWORD_VARIABLE`); ``mail_from``: the sender's address; ``digest_seconds``:
    at most one digest per shop in this time (0: each at once); ``service_url``: the
    service's address as merchants reach it, for the links in the e-mails;
    ``timeout``: seconds an SMTP exchange may take; ``poll_seconds``: how often the
    queue is looked at; ``retry_seconds``: the wait before a failed send is tried again.
    """

    smtp_host: str
    smtp_port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    mail_from: str = ""
    digest_seconds: int = DEFAULT_DIGEST_SECONDS
    service_url: str = ""
    timeout: float = 20.0
    poll_seconds: float = POLL_SECONDS
    retry_seconds: float = RETRY_SECONDS

    @property
    def sender(self) -> str:
        return self.mail_from or f"xlstock@{socket.getfqdn()}"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def compose(digest: Digest, settings: MailSettings, service_url: str) -> EmailMessage:
    """The digest as an e-mail in the account's language: each SKU, its level and
    threshold, and a link to the Stock levels page."""
    language = digest.language

    def t(text: str, **params: object) -> str:
        return translate(text, language, **params)

    base = service_url.rstrip("/")
    count = len(digest.items) + digest.more
    lines = [t("These products of {shop} reached their low stock threshold:",
               shop=digest.shop_url), ""]
    for item in digest.items:
        label = " / ".join(part for part in (item.name, item.variant) if part)
        lines.append(f"  {item.sku}" + (f" ({label})" if label else "") + ": " + t(
            "{level} left (threshold {threshold})", level=number(item.level, language),
            threshold=number(item.threshold, language)))
    if digest.more:
        lines.append("  " + t("... and {count} more.", count=number(digest.more, language)))
    lines += ["", t("Stock levels: {link}", link=f"{base}/account/stock?lang={language}"),
              "", "-- ", t("You get these e-mails because low stock e-mails are on for "
                           "{shop}; switch them off on the Services page: {link}",
                           shop=digest.shop_url,
                           link=f"{base}/account/services?lang={language}")]
    message = EmailMessage()
    message["Subject"] = t("Low stock at {shop}: {count} product(s)", shop=digest.shop_url,
                           count=number(count, language))
    message["From"] = settings.sender
    message["To"] = digest.email or ""
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid("xlstock-low-stock")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    message["Content-Language"] = language  # after set_content, which clears Content-*
    return message


def send(message: EmailMessage, settings: MailSettings,
         smtp: smtplib.SMTP | None = None) -> None:
    """Hand ``message`` to the SMTP server (through ``smtp``, a connection not yet open,
    if given); raises :class:`OSError` or :class:`smtplib.SMTPException` when it could
    not."""
    smtp = smtp or smtplib.SMTP(timeout=settings.timeout)
    with smtp:
        smtp.connect(settings.smtp_host, settings.smtp_port)
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(message)


class LowStockMailer:
    """The background sender of low-stock digests for ``store``'s database.

    :meth:`drain` sends what is due once (the tests call it with their own clock);
    :meth:`start` runs it every ``poll_seconds`` in a daemon thread until :meth:`stop`.
    """

    def __init__(self, store: StockStore, settings: MailSettings, *,
                 clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self._poll = settings.poll_seconds
        self._name = f"{socket.gethostname()}-{secrets.token_hex(6)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._smtp: smtplib.SMTP | None = None

    def drain(self) -> int:
        """Send every digest that is due; returns how many went out."""
        sent = 0
        now = self._clock()
        due = format_time(now - dt.timedelta(seconds=self.settings.digest_seconds))
        with self.store.transaction(write=False) as conn:
            waiting = shops_waiting(conn, format_time(now), due)
        for shop_id in waiting:
            if self._stop.is_set():
                break
            sent += self._send_one(shop_id)
        return sent

    def _send_one(self, shop_id: int) -> int:
        now = self._clock()
        stamp = format_time(now)
        lease = format_time(now + dt.timedelta(seconds=LEASE_SECONDS))
        due = format_time(now - dt.timedelta(seconds=self.settings.digest_seconds))
        with self.store.transaction(write=True) as conn:
            if not claim_digest(conn, shop_id, self._name, stamp, lease, due):
                return 0
            digest = read_digest(conn, shop_id)
        if digest is None or not digest.email:
            with self.store.transaction(write=True) as conn:
                if digest is not None:
                    finish_digest(conn, digest, self._name, stamp)
                else:
                    release_digest(conn, shop_id, self._name, stamp)
            return 0
        try:
            self._smtp = smtplib.SMTP(timeout=self.settings.timeout)
            send(compose(digest, self.settings, self.settings.service_url), self.settings,
                 self._smtp)
        except (OSError, smtplib.SMTPException) as exc:
            self._failed(shop_id, exc)
            return 0
        if self._failing:
            log.info("low stock e-mails go out again through %s", self.settings.smtp_host)
            self._failing = False
        with self.store.transaction(write=True) as conn:
            finish_digest(conn, digest, self._name, format_time(self._clock()))
        log.info("low stock e-mail for %s: %d product(s)", digest.shop_url,
                 len(digest.items) + digest.more)
        return 1

    def _failed(self, shop_id: int, exc: BaseException) -> None:
        retry = format_time(self._clock() + dt.timedelta(seconds=self.settings.retry_seconds))
        with self.store.transaction(write=True) as conn:
            failures = release_digest(conn, shop_id, self._name, retry)
        if not self._failing or failures == 1:
            log.warning("could not send a low stock e-mail through %s:%d (%s); it is kept "
                        "and tried again", self.settings.smtp_host, self.settings.smtp_port,
                        exc)
        self._failing = True

    def run(self) -> None:
        """Drain every ``poll_seconds`` until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:  # the sender must outlive a database hiccup
                log.exception("the low stock e-mail sender failed; it tries again")
            self._stop.wait(self._poll)

    def start(self) -> LowStockMailer:
        self._thread = threading.Thread(target=self.run, name="xlstock-low-stock-mail",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; a send under way is cut short (its digest stays queued), so
        that a silent SMTP server does not hold the service's shutdown."""
        self._stop.set()
        sock = getattr(self._smtp, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
