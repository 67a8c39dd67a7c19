"""The account pages under ``/account/``: a Flask blueprint (:data:`account_pages`, at
module level, as in Flask's tutorial) rendering Jinja templates (autoescaped), in
English or French, working without JavaScript. The account storage is the
application's (``current_app.extensions["xlstock"]``); the request's language and
session are in :data:`flask.g`.

Security, in one place: the session cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
under https, path ``/account/``) names a server-side session whose id is new at every
sign-in; every form carries a CSRF token (the session's, or for the sign-in form one
signed with the service's key and bound to a cookie) and a POST without the right one
is answered 400; sign-in is refused with 429 after repeated failures (see
:meth:`AccountStore.sign_in`); objects of another account answer 404; every answer
carries a Content-Security-Policy that allows no script at all (set with the API's
headers, in ``xlstock.server.app.security_headers``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as Answer

from xlstock.i18n import date_time, number, translate
from xlstock.server.account.strings import LANGUAGE_NAMES, LANGUAGES
from xlstock.server.accounts import (
    MAX_LOW_STOCK_AT,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    UNDOABLE_PUBLISHES,
    Account,
    AccountStore,
    Refused,
    Session,
    Shop,
    UndoTarget,
    password_problem,
    storage_is_full,
)

log = logging.getLogger("xlstock.server")

SESSION_COOKIE = "xlstock_session"
FORM_COOKIE = "xlstock_form"
LANGUAGE_COOKIE = "xlstock_lang"
COOKIE_PATH = "/account/"
FORM_LIMIT = 64 * 1024
MAX_SEARCH = 200

MESSAGES = {
    "not_web_address": "“{url}” is not a web address; write it like https://myshop.example.",
    "held_by_another": "Another account holds {url}.",
    "claim_needs_token": "{url} was registered with xlstock shop add. To claim it, enter "
                         "in “API token of the shop” a token that command printed for it "
                         "(ask the stock service's operator).",
    "registered_apart": "{url} is registered already, with stock of its own; your stock "
                        "cannot move onto it.",
    "passwords_differ": "The two passwords differ.",
    "password_short": "The password needs at least {count} characters.",
    "password_long": "The password is too long (at most {count} characters).",
    "same_password": "Choose a password other than the one-time password.",
    "low_stock_bad": "Give a whole number from 0 to 1,000,000,000.",
}
DONE = {
    "registered": "The shop {url} is registered. Next: switch on the automatic stock level "
                  "update on the Services page.",
    "claimed": "Your account now holds the shop {url}.",
    "moved": "Your stock is now under {url}; the old address is no longer registered.",
    "unchanged": "Nothing changed.",
    "saved": "Saved.",
    "password": "Your password is saved.",
    "revoked": "The token is revoked: the stock service refuses it from now on.",
    "signed_out": "You are signed out.",
}
SOURCES = {"publish": "Publish", "order": "Order", "catalogue": "Catalogue", "undo": "Undo"}
STORAGE_FULL_RETRY = 60
"""Seconds a page that could not save (the database full) asks the browser to wait."""
_WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")
UNDO_ROWS_SHOWN = 200
"""Rows an undo's preview and result pages list (those left as they are first); the
count of the others follows (a publish of 100,000 SKUs would make a 15 MB page)."""
_UNDO_KEY = re.compile(r"undo-[0-9A-Za-z_-]{16,64}")
"""The Idempotency-Key of an undo made on the pages: new on each preview page, so that a
confirmation sent twice (a double click, a reload) undoes once."""


def whole_number(raw: str) -> int | None:
    """``raw`` as a whole number when it is 1 to 12 ASCII digits, else ``None``
    (``str.isdigit`` also takes ``²`` and other digits ``int`` refuses)."""
    return int(raw) if _WHOLE_NUMBER.fullmatch(raw) else None


def _language() -> str:
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        g.save_language = chosen
        return chosen
    saved = request.cookies.get(LANGUAGE_COOKIE)
    if saved in LANGUAGES:
        return saved
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def t(text: str, **params: Any) -> str:
    """``text`` in the page's language (see :mod:`xlstock.server.account.strings`)."""
    return translate(text, getattr(g, "language", "en"), **params)


def when(stamp: str | None) -> str:
    """``2026-11-27 10:00 UTC`` from a stored ``2026-11-27T10:00:00Z``, in the page's
    language (French: ``27/11/2026 10:00 UTC``)."""
    if not stamp:
        return t("never")
    try:
        return date_time(stamp, getattr(g, "language", "en")) + " UTC"
    except ValueError:  # not a stamp the service wrote: shown as it is
        return stamp[:10] + " " + stamp[11:16] + " UTC"


account_pages = Blueprint("account", __name__, url_prefix="/account",
                          template_folder="templates", static_folder="static",
                          static_url_path="/static")
"""The account pages; :func:`xlstock.server.app.create_app` registers them. Their
security headers are the application's (``xlstock.server.app.security_headers``)."""


def accounts() -> AccountStore:
    """The account storage of the application handling this request."""
    found: AccountStore = current_app.extensions["xlstock"].accounts
    return found


# -- every request -------------------------------------------------------------------


@account_pages.before_request
def prepare() -> None:
    g.language = _language()
    request.max_content_length = FORM_LIMIT
    g.session = accounts().session(request.cookies.get(SESSION_COOKIE, ""))
    if g.session is not None and getattr(g, "save_language", None):
        remember_language(g.session.account, g.save_language)


def remember_language(account: Account, language: str) -> None:
    """Keep the account's chosen language for its e-mails; a failure to keep it never
    stops the page."""
    try:
        accounts().save_language(account, language)
    except Exception:  # the page matters more than the e-mails' language
        log.warning("could not save the language of account %s", account.id, exc_info=True)


@account_pages.after_request
def keep_language(response: Answer) -> Answer:
    """The language chosen with ``?lang=`` in a cookie, for the next pages."""
    chosen = getattr(g, "save_language", None)
    if chosen:
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600,
                            path=COOKIE_PATH, httponly=True, samesite="Strict",
                            secure=request.is_secure)
    return response


def set_session_cookie(response: Answer, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, path=COOKIE_PATH, httponly=True,
                        samesite="Strict", secure=request.is_secure)


def form_csrf(cookie: str) -> str:
    return hmac.new(accounts().form_key(), b"sign-in\0" + cookie.encode(),
                    hashlib.sha256).hexdigest()


def check_csrf(expected: str) -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400)


def _language_links(endpoint: str) -> dict[str, str]:
    """This page in each language (a GET keeps its query; a POST's page links to the
    form's page)."""
    view_args = request.view_args or {}
    args: dict[str, Any] = {k: v for k, v in request.args.items()
                            if k != "lang" and k not in view_args}
    return {
        code: url_for(endpoint, **view_args, **args, lang=code) if request.method == "GET"
        else url_for(endpoint, **view_args, lang=code)
        for code in LANGUAGES
    }


def render(template: str, status: int = 200, **context: Any) -> Answer:
    session: Session | None = g.session
    endpoint = request.endpoint or "account.index"
    html = render_template(
        template, t=t, when=when, number=lambda n: number(n, g.language),
        language=g.language, languages=LANGUAGE_NAMES, switch=_language_links(endpoint),
        account=session.account if session and not session.account.must_change_password
        else None,
        csrf=context.pop("csrf", session.csrf if session else ""),
        current=endpoint.partition(".")[2], **context,
    )
    return Response(html, status=status, mimetype="text/html")


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view for a signed-in account: otherwise to Sign in; with a one-time password,
    to the new-password page first; a POST needs the session's CSRF."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session: Session | None = g.session
        if session is None:
            return redirect(url_for("account.sign_in"), 303)
        if request.method == "POST":
            check_csrf(session.csrf)
        if session.account.must_change_password and view.__name__ not in (
                "password", "sign_out"):
            return redirect(url_for("account.password"), 303)
        return view(session, *args, **kwargs)

    return wrapper


def shop_or_none(session: Session) -> Shop | None:
    return accounts().shop_of(session.account)


def done_message(shop: Shop | None) -> str | None:
    key = request.args.get("done", "")
    if key not in DONE:
        return None
    return t(DONE[key], url=shop.url if shop else "")


# -- signing in and out ----------------------------------------------------------------


@account_pages.get("/")
def index() -> Answer:
    if g.session is None:
        return redirect(url_for("account.sign_in"), 303)
    return redirect(url_for("account.stock"), 303)


def sign_in_page(status: int, error: str | None, email: str = "") -> Answer:
    cookie = request.cookies.get(FORM_COOKIE, "")
    fresh = not cookie
    if fresh:
        cookie = secrets.token_urlsafe(24)
    response = render("sign_in.html", status, error=error, email=email,
                      csrf=form_csrf(cookie), done=done_message(None))
    if fresh:
        response.set_cookie(FORM_COOKIE, cookie, path=COOKIE_PATH, httponly=True,
                            samesite="Strict", secure=request.is_secure)
    return response


@account_pages.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Answer:
    if request.method == "GET":
        if g.session is not None:
            return redirect(url_for("account.index"), 303)
        return sign_in_page(200, None)
    cookie = request.cookies.get(FORM_COOKIE, "")
    if not cookie:
        abort(400, description="cookies")
    check_csrf(form_csrf(cookie))
    email = request.form.get("email", "")[:300]
    outcome = accounts().sign_in(email, request.form.get("password", ""),
                                 request.remote_addr or "-")
    if outcome.blocked:
        response = sign_in_page(
            429, t("Too many failed sign-ins. Try again in {seconds} seconds.",
                   seconds=outcome.blocked), email)
        response.headers["Retry-After"] = str(outcome.blocked)
        return response
    if outcome.session_id is None or outcome.account is None:
        return sign_in_page(401, t("Wrong email or password."), email)
    if g.session is not None:
        accounts().end_session(g.session)
    remember_language(outcome.account, g.language)
    response = redirect(_first_page(outcome.account), 303)
    set_session_cookie(response, outcome.session_id)
    return response


def _first_page(account: Account) -> str:
    """Where a sign-in leads: the new password, the shop's address, or the stock."""
    if account.must_change_password:
        return url_for("account.password")
    if accounts().shop_of(account) is None:
        return url_for("account.profile")
    return url_for("account.stock")


@account_pages.post("/sign-out")
@signed_in
def sign_out(session: Session) -> Answer:
    accounts().end_session(session)
    response = redirect(url_for("account.sign_in", done="signed_out"), 303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True,
                           samesite="Strict", secure=request.is_secure)
    return response


@account_pages.route("/password", methods=["GET", "POST"])
@signed_in
def password(session: Session) -> Answer:
    if not session.account.must_change_password:
        return redirect(url_for("account.profile"), 303)
    error = None
    if request.method == "POST":
        new = request.form.get("new_password", "")
        problem = password_problem(new, request.form.get("repeat_password", ""))
        if problem is None:
            try:
                session_id = accounts().change_password(session, new)
            except Refused as refused:
                problem = refused.key
            else:
                return _password_saved(session, session_id)
        count = MIN_PASSWORD_LENGTH if problem == "password_short" else MAX_PASSWORD_LENGTH
        error = t(MESSAGES[problem], count=count)
    return render("password.html", 422 if error else 200, error=error,
                  minimum=MIN_PASSWORD_LENGTH)


def _password_saved(session: Session, session_id: str | None) -> Answer:
    """On to the account's pages in the new session (to Sign in when the password was
    reset meanwhile: ``session_id`` is ``None``)."""
    if session_id is None:
        return redirect(url_for("account.sign_in"), 303)
    shop = accounts().shop_of(session.account)
    response = redirect(url_for(
        "account.stock" if shop else "account.profile", done="password"), 303)
    set_session_cookie(response, session_id)
    return response


# -- the account's pages ---------------------------------------------------------------


@account_pages.get("/stock")
@signed_in
def stock(session: Session) -> Answer:
    shop = shop_or_none(session)
    if shop is None:
        return render("no_shop.html", title=t("Stock levels"))
    search = request.args.get("search", "").strip()[:MAX_SEARCH]
    after = request.args.get("after")
    before = request.args.get("before")
    page = accounts().stock_page(shop, search=search, after=after, before=before,
                                 last=request.args.get("last") == "1")
    return render("stock.html", shop=shop, page=page, search=search,
                  links=_stock_links(page, search), done=done_message(shop))


def _stock_links(page: Any, search: str) -> dict[str, str]:
    """The Stock levels page's first, previous, next and last links (by SKU, keeping the
    search)."""
    keep: dict[str, Any] = {"search": search} if search else {}
    links = {}
    if page.has_previous:
        links["first"] = url_for("account.stock", **keep)
        links["previous"] = url_for("account.stock", before=page.rows[0].sku, **keep) \
            if page.rows else url_for("account.stock", **keep)
    if page.has_next:
        links["next"] = url_for("account.stock", after=page.rows[-1].sku, **keep)
        links["last"] = url_for("account.stock", last="1", **keep)
    return links


@account_pages.route("/profile", methods=["GET", "POST"])
@signed_in
def profile(session: Session) -> Answer:
    shop = shop_or_none(session)
    error = None
    typed = shop.url if shop else ""
    if request.method == "POST":
        typed = request.form.get("shop_url", "")
        try:
            what, _ = accounts().save_shop_url(session.account, typed,
                                               request.form.get("shop_token", ""))
        except Refused as refused:
            error = t(MESSAGES[refused.key], **refused.params)
        else:
            return redirect(url_for("account.profile", done=what), 303)
    return render("profile.html", 422 if error else 200, shop=shop, error=error,
                  typed=typed, done=done_message(shop))


@account_pages.route("/services", methods=["GET", "POST"])
@signed_in
def services(session: Session) -> Answer:
    shop = shop_or_none(session)
    if shop is None:
        return render("no_shop.html", title=t("Services"))
    error = None
    if request.method == "POST":
        low_stock_at = whole_number(request.form.get("low_stock_at", "").strip())
        if low_stock_at is None or low_stock_at > MAX_LOW_STOCK_AT:
            error = t(MESSAGES["low_stock_bad"])
        else:
            accounts().save_services(
                shop, stock_updates=request.form.get("stock_updates") == "on",
                low_stock_at=low_stock_at,
                low_stock_mail=request.form.get("low_stock_mail") == "on")
            return redirect(url_for("account.services", done="saved"), 303)
    return render("services.html", 422 if error else 200, shop=shop, error=error,
                  done=done_message(shop), mail_ready=accounts().store.low_stock_mail,
                  email=session.account.email)


@account_pages.route("/tokens", methods=["GET", "POST"])
@signed_in
def tokens(session: Session) -> Answer:
    shop = shop_or_none(session)
    if shop is None:
        return render("no_shop.html", title=t("API tokens"))
    created = accounts().create_token(shop) if request.method == "POST" else None
    return render("tokens.html", 201 if created else 200, shop=shop, created=created,
                  active=accounts().tokens(shop, revoked=False),
                  revoked=accounts().tokens(shop, revoked=True, limit=20),
                  done=done_message(shop))


@account_pages.get("/tokens/<public_id>")
@signed_in
def token(session: Session, public_id: str) -> Answer:
    shop = shop_or_none(session)
    found = [row for revoked in (False, True)
             for row in (accounts().tokens(shop, revoked=revoked) if shop else [])
             if row.public_id == public_id]
    if not found:
        abort(404)
    return render("token.html", shop=shop, row=found[0])


@account_pages.post("/tokens/<public_id>/revoke")
@signed_in
def revoke(session: Session, public_id: str) -> Answer:
    shop = shop_or_none(session)
    if shop is None or accounts().revoke_token(shop, public_id) is None:
        abort(404)
    return redirect(url_for("account.tokens", done="revoked"), 303)


@account_pages.get("/history")
@signed_in
def history(session: Session) -> Answer:
    shop = shop_or_none(session)
    if shop is None:
        return render("no_shop.html", title=t("History"))
    before = whole_number(request.args.get("before", ""))
    page = accounts().history_page(shop, before=before)
    return render("history.html", shop=shop, page=page, sources=SOURCES,
                  newest=before is not None, undoable_count=UNDOABLE_PUBLISHES)


# -- undoing a publish -----------------------------------------------------------------


def undo_target(session: Session, number: int) -> tuple[Shop, UndoTarget]:
    shop = shop_or_none(session)
    target = accounts().undo_target(shop, number) if shop else None
    if shop is None or target is None:
        abort(404)
    return shop, target


def undo_refusal(answer: Any) -> str:
    """The page's words for an undo the store refused."""
    error = answer.body.get("error", {})
    code = error.get("code")
    if code == "already_undone":
        return t("This publish was already undone on {when}.",
                 when=when(error.get("undone_at")))
    if code == "below_zero":
        return t("No row of this publish can be undone: each would leave a level below "
                 "zero, or its product is no longer in the shop. Nothing was changed.")
    return t("This publish cannot be undone: {reason}", reason=error.get("message", ""))


def undo_page(shop: Shop, target: UndoTarget, status: int = 200,
              error: str | None = None) -> Answer:
    """The preview of undoing ``target``, with a new key for its confirmation."""
    if target.undone_at is not None:
        return render("undo.html", 409, shop=shop, target=target, plan=None, error=t(
            "This publish was already undone on {when}.", when=when(target.undone_at)))
    if not target.offered:
        return render("undo.html", 422, shop=shop, target=target, plan=None, error=t(
            "Only the last {count} publishes can be undone here; use xlstock undo for "
            "an older one.", count=UNDOABLE_PUBLISHES))
    answer = accounts().undo_publish(shop, target, key=None, preview=True)
    if answer.status != 200:
        return render("undo.html", answer.status, shop=shop, target=target, plan=None,
                      error=undo_refusal(answer))
    return render("undo.html", status, shop=shop, target=target, plan=answer.body,
                  error=error, undo_key="undo-" + secrets.token_urlsafe(18),
                  limit=UNDO_ROWS_SHOWN)


@account_pages.get("/history/<int:number>/undo")
@signed_in
def undo_preview(session: Session, number: int) -> Answer:
    shop, target = undo_target(session, number)
    return undo_page(shop, target)


@account_pages.post("/history/<int:number>/undo")
@signed_in
def undo_confirm(session: Session, number: int) -> Answer:
    shop, target = undo_target(session, number)
    undo_key = request.form.get("undo_key", "")
    if not _UNDO_KEY.fullmatch(undo_key):
        abort(400)
    if target.undone_at is None and not target.offered:
        return undo_page(shop, target)
    answer = accounts().undo_publish(
        shop, target, key=undo_key, preview=False,
        confirm_partial=request.form.get("confirm_partial") == "on")
    if answer.status == 200:
        return render("undo_done.html", shop=shop, target=target, result=answer.body,
                      limit=UNDO_ROWS_SHOWN)
    error = answer.body.get("error", {})
    if error.get("code") == "below_zero" and "confirm_partial" not in request.form:
        return undo_page(shop, target, 422, t(
            "Some rows would go below zero: tick the box to undo the other rows and "
            "leave these as they are."))
    return render("undo.html", answer.status, shop=shop, target=target, plan=None,
                  error=undo_refusal(answer))


@account_pages.route("/<path:anything>", methods=["GET", "POST"])
def unknown(anything: str) -> Answer:
    abort(404)


# -- errors, as pages ------------------------------------------------------------------


@account_pages.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Answer:
    status = error.code or 500
    if status == 400:
        title = t("Request refused")
        message = t("This form needs cookies: allow cookies for this site, reload the "
                    "page and try again.") if error.description == "cookies" else t(
            "The form could not be checked: its security token is missing or out of "
            "date. Go back, reload the page and try again.")
    elif status == 404:
        title, message = t("Page not found"), t("There is no such page in your account.")
    elif status == 413:
        title, message = t("Request refused"), t("The form is too large.")
    else:
        title, message = t("Request refused"), t("This page does not take that request.")
    return page_for_error(status, title, message)


@account_pages.errorhandler(Exception)
def failure(error: Exception) -> Answer:
    if storage_is_full(error):
        log.error("the stock database is full: %s %s could not save",
                  request.method, request.path)
        answer = page_for_error(429, t("Nothing could be saved"), t(
            "The stock service cannot save anything right now: its storage is full. "
            "Nothing was changed. Try again in a few minutes; if it persists, tell the "
            "stock service's operator."))
        answer.headers["Retry-After"] = str(STORAGE_FULL_RETRY)
        return answer
    log.exception(
        "internal error on %s %s", request.method, request.path)
    return page_for_error(500, t("Something went wrong"), t(
        "The stock service failed on this page; nothing was changed. Try again."))


def page_for_error(status: int, title: str, message: str) -> Answer:
    if not hasattr(g, "language"):
        g.language = _language()
    if not hasattr(g, "session"):
        g.session = None
    return render("error.html", status, title=title, message=message)
