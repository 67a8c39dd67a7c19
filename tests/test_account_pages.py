"""The online account (issue 10) over HTTP: storage, security and the API's hooks, against
the real service on loopback. The same flows in a real browser: test_account_browser.py."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from support.accountkit import NEW_PASSWORD, Merchant, csrf_of

from xlstock.cli import main
from xlstock.model import StockItem
from xlstock.server.account.strings import french
from xlstock.server.accounts import AccountStore, verify_password
from xlstock.server.app import create_app
from xlstock.server.runner import start_background_server
from xlstock.server.storage import StockStore, hash_token

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "xlstock" / "server" / "account" / "templates"


@pytest.fixture
def accounts(stock_service) -> AccountStore:
    return AccountStore(stock_service.store)


def unique(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def merchant(stock_service, accounts) -> Merchant:
    return Merchant(stock_service.url, accounts, f"{unique('m')}@shop.example")


def sync(base: str, shop: str, token: str) -> requests.Response:
    return requests.get(base + "/v1/stock", params={"shop": shop},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)


# --- accounts and passwords -----------------------------------------------------------


def test_account_add_prints_a_one_time_password_alone_on_the_last_line(tmp_path):
    db = tmp_path / "shop.db"
    result = CliRunner().invoke(main, ["account", "add", "Merchant@Shop.Example", "--db", str(db)])
    assert result.exit_code == 0, result.output
    password = result.output.rstrip("\n").split("\n")[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", password)
    assert "Created the online account merchant@shop.example" in result.output
    again = CliRunner().invoke(main, ["account", "add", "merchant@shop.example", "--db", str(db)])
    assert again.exit_code == 0 and "new one-time password" in again.output
    assert again.output.split()[-1] != password
    bad = CliRunner().invoke(main, ["account", "add", "not an address", "--db", str(db)])
    assert bad.exit_code == 2 and "not an email address" in bad.output


def test_passwords_are_stored_as_scrypt_hashes(stock_service, merchant):
    merchant.start()
    with stock_service.store.transaction(write=False) as conn:
        stored = conn.execute("SELECT password_hash FROM accounts WHERE email = ?",
                              (merchant.email,)).fetchone()[0]
    assert stored.startswith("scrypt:32768:8:1$") and NEW_PASSWORD not in stored
    assert verify_password(NEW_PASSWORD, stored) and not verify_password("other", stored)


def test_first_sign_in_asks_for_a_new_password_before_anything_else(merchant):
    answer = merchant.sign_in()
    assert answer.url.endswith("/account/password")
    assert 'name="new_password"' in answer.text and 'name="repeat_password"' in answer.text
    assert merchant.get("/tokens").url.endswith("/account/password")
    differ = merchant.post("/password", {"new_password": NEW_PASSWORD,
                                         "repeat_password": NEW_PASSWORD + "!"})
    assert differ.status_code == 422 and "The two passwords differ." in differ.text
    short = merchant.post("/password", {"new_password": "short", "repeat_password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    same = merchant.post("/password", {"new_password": merchant.password,
                                       "repeat_password": merchant.password})
    assert same.status_code == 422 and "one-time password" in same.text
    saved = merchant.post("/password", {"new_password": NEW_PASSWORD,
                                        "repeat_password": NEW_PASSWORD})
    assert saved.url.endswith("/account/profile?done=password")
    old = Merchant.__new__(Merchant)
    old.base, old.email, old.http, old.csrf = merchant.base, merchant.email, requests.Session(), ""
    assert old.sign_in(merchant.password).status_code == 401  # the one-time one is gone
    assert old.sign_in(NEW_PASSWORD).url.endswith("/account/profile")


# --- sessions and cookies -------------------------------------------------------------


def test_session_cookie_is_httponly_strict_and_new_at_every_sign_in(merchant):
    merchant.start()
    merchant.post("/sign-out")
    ids = []
    for _ in range(2):
        browser = requests.Session()
        page = browser.get(merchant.base + "/sign-in", timeout=30)
        answer = browser.post(
            merchant.base + "/sign-in", allow_redirects=False, timeout=30,
            headers={"Cookie": f"xlstock_form={browser.cookies['xlstock_form']}; "
                               "xlstock_session=fixed-by-an-attacker"},
            data={"csrf_token": csrf_of(page.text), "email": merchant.email,
                  "password": NEW_PASSWORD})
        assert answer.status_code == 303
        header = answer.headers["Set-Cookie"]
        assert "HttpOnly" in header and "SameSite=Strict" in header
        assert "Path=/account/" in header and "Secure" not in header  # http on loopback
        ids.append(re.match(r"xlstock_session=([^;]+);", header).group(1))
    assert "fixed-by-an-attacker" not in ids and ids[0] != ids[1]


def test_session_cookie_is_secure_under_https(tmp_path):
    store = StockStore(tmp_path / "s.db")
    try:
        email, password, _ = AccountStore(store).add_account("a@shop.example")
        client = create_app(store).test_client()
        page = client.get("/account/sign-in", base_url="https://stock.example")
        assert "Secure" in page.headers["Set-Cookie"]
        answer = client.post("/account/sign-in", base_url="https://stock.example", data={
            "csrf_token": csrf_of(page.get_data(as_text=True)), "email": email,
            "password": password})
        assert answer.status_code == 303
        cookie = answer.headers["Set-Cookie"]
        assert cookie.startswith("xlstock_session=") and "Secure" in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        store.close()


def test_sign_out_ends_the_session_on_the_server(merchant):
    merchant.start()
    session_id = merchant.http.cookies.get("xlstock_session", path="/account/")
    merchant.post("/sign-out")
    thief = requests.Session()
    thief.cookies.set("xlstock_session", session_id, path="/account/")
    assert thief.get(merchant.base + "/stock", timeout=30).url.endswith("/account/sign-in")


def test_every_form_needs_its_csrf_token(merchant, stock_service):
    merchant.start(f"https://{unique('csrf')}.example")
    token = merchant.create_token()
    token_id = merchant.token_ids()[0]
    for path, form in [("/profile", {"shop_url": "https://elsewhere.example"}),
                       ("/services", {"low_stock_at": "1"}), ("/tokens", {}),
                       (f"/tokens/{token_id}/revoke", {}), ("/sign-out", {})]:
        missing = merchant.post(path, form, csrf=False)
        assert missing.status_code == 400, path
        assert "security token" in missing.text
        wrong = merchant.post(path, {**form, "csrf_token": "x" * 43}, csrf=False)
        assert wrong.status_code == 400, path
    assert merchant.get("/stock").status_code == 200  # still signed in, nothing changed
    assert len(merchant.token_ids()) == 1
    shop = merchant.get("/profile").text
    assert "elsewhere" not in shop
    anonymous = requests.Session()
    anonymous.get(merchant.base + "/sign-in", timeout=30)
    refused = anonymous.post(merchant.base + "/sign-in", timeout=30,
                             data={"email": merchant.email, "password": NEW_PASSWORD})
    assert refused.status_code == 400
    assert sync(stock_service.url, merchant_shop(merchant), token).status_code == 200


def merchant_shop(merchant: Merchant) -> str:
    found = re.search(r'id="shop_url"[^>]*value="([^"]+)"', merchant.get("/profile").text)
    assert found
    return found.group(1)


def test_sign_in_is_refused_with_429_after_five_failures_for_an_account(tmp_path):
    with start_background_server(tmp_path / "s.db") as running:
        accounts = AccountStore(running.store)
        target = Merchant(running.url, accounts, "target@shop.example")
        for _ in range(5):
            assert target.sign_in("wrong password").status_code == 401
        blocked = target.sign_in()  # even the right password, for a minute
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["Retry-After"]) <= 61
        assert "Too many failed sign-ins" in blocked.text
        with running.store.transaction(write=True) as conn:  # a minute later
            conn.execute("UPDATE sign_in_failures SET at = '2000-01-01T00:00:00Z'")
        assert target.sign_in().url.endswith("/account/password")


def test_sign_in_is_refused_with_429_after_five_failures_from_one_address(tmp_path):
    with start_background_server(tmp_path / "s.db") as running:
        accounts = AccountStore(running.store)
        victim = Merchant(running.url, accounts, "victim@shop.example")
        for n in range(5):
            guesser = Merchant(running.url, accounts, f"other{n}@shop.example")
            assert guesser.sign_in("wrong").status_code == 401
        assert victim.sign_in().status_code == 429  # same address, another account


def test_unknown_email_and_wrong_password_get_the_same_answer(merchant):
    merchant.start()
    merchant.post("/sign-out")
    wrong = merchant.sign_in("not the password")
    unknown = Merchant.__new__(Merchant)
    unknown.base, unknown.email, unknown.http, unknown.csrf = (
        merchant.base, "nobody@shop.example", requests.Session(), "")
    nobody = unknown.sign_in("not the password")
    assert wrong.status_code == nobody.status_code == 401
    unknown.email = "no\x00body@shop.example"  # recorded as a failure, even on PostgreSQL
    assert unknown.sign_in("not\x00the password").status_code == 401
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in nobody.text


# --- pages of another account, escaping, headers --------------------------------------


def test_another_accounts_token_is_404_and_stays_valid(stock_service, accounts):
    owner = Merchant(stock_service.url, accounts, f"{unique('a')}@shop.example")
    shop = f"https://{unique('own')}.example"
    owner.start(shop)
    token = owner.create_token()
    token_id = owner.token_ids()[0]
    intruder = Merchant(stock_service.url, accounts, f"{unique('b')}@shop.example")
    intruder.start(f"https://{unique('intruder')}.example")
    intruder.get("/tokens")
    assert intruder.get(f"/tokens/{token_id}").status_code == 404
    assert intruder.post(f"/tokens/{token_id}/revoke").status_code == 404
    assert "Page not found" in intruder.get(f"/tokens/{token_id}").text
    assert owner.get(f"/tokens/{token_id}").status_code == 200
    assert sync(stock_service.url, shop, token).status_code == 200
    assert intruder.get("/no/such/page").status_code == 404


def test_every_value_is_escaped_and_no_script_may_run(stock_service, merchant):
    shop = f"https://{unique('escape')}.example"
    merchant.start(shop)
    stock_service.store.register_shop(shop, [
        StockItem("<b>SKU</b>", "<script>alert(1)</script>", "\"'><img src=x>", 2)])
    page = merchant.get("/stock", params={"search": "<script>"})
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "<img src=x>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;SKU&lt;/b&gt;" in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "'unsafe-inline'" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in re.sub(r"&lt;script", "", page.text)
    history = merchant.get("/history")
    assert "&lt;b&gt;SKU&lt;/b&gt;" in history.text and "<b>SKU</b>" not in history.text


# --- the shop: registering, claiming, moving ------------------------------------------


def test_profile_registers_the_normalised_url_with_updates_off(stock_service, merchant):
    name = unique("new")
    merchant.start()
    saved = merchant.post("/profile", {"shop_url": f" HTTPS://{name.upper()}.Example:443/ "})
    assert saved.url.endswith("done=registered")
    shop = f"https://{name}.example"
    assert f"The shop {shop} is registered" in saved.text
    assert stock_service.store.shops().count(shop) == 1
    token = merchant.create_token()
    refused = sync(stock_service.url, shop, token)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "stock_updates_off"
    assert f"{stock_service.url}/account/services" in error["message"]
    merchant.switch_updates(True)
    assert sync(stock_service.url, shop, token).status_code == 200


def test_a_url_that_is_not_http_or_held_by_another_account_is_refused(stock_service, accounts,
                                                                        merchant):
    merchant.start()
    for typed in ["ftp://shop.example", "shop.example", "https://", "javascript:alert(1)"]:
        answer = merchant.post("/profile", {"shop_url": typed})
        assert answer.status_code == 422, typed
        assert "is not a web address" in answer.text
        assert 'aria-invalid="true"' in answer.text
    other = Merchant(stock_service.url, accounts, f"{unique('o')}@shop.example")
    held = f"https://{unique('held')}.example"
    other.start(held)
    answer = merchant.post("/profile", {"shop_url": held + "/"})
    assert answer.status_code == 422 and f"Another account holds {held}." in answer.text


def test_saving_a_shop_add_url_claims_it_with_updates_left_on(stock_service, merchant):
    shop = f"https://{unique('scripted')}.example"
    script_token = stock_service.store.add_shop(shop, [StockItem("A-1", "Hoodie", "", 4)])
    merchant.start()
    answer = merchant.post("/profile", {"shop_url": shop, "shop_token": script_token})
    assert answer.url.endswith("done=claimed")
    assert sync(stock_service.url, shop, script_token).status_code == 200  # still on
    stock = merchant.get("/stock").text
    assert "Hoodie" in stock and "A-1" in stock
    assert len(merchant.token_ids()) == 1  # the script's token is listed, and revocable
    # shop add --catalogue keeps loading products, whoever holds the shop
    stock_service.store.register_shop(shop, [StockItem("B-2", "Cap", "", 9)])
    assert "Cap" in merchant.get("/stock").text


def test_claiming_a_shop_add_url_takes_a_token_of_that_shop(stock_service, accounts):
    """Issue 19: any account could claim a shop `shop add` registered, take a token and
    read its stock; the claim now takes one of the shop's API tokens, not revoked."""
    shop = f"https://{unique('scripted')}.example"
    other = f"https://{unique('other')}.example"
    script_token = stock_service.store.add_shop(shop, [StockItem("A-1", "Hoodie", "", 4)])
    other_token = stock_service.store.add_shop(other)
    spare = stock_service.store.add_shop(shop)
    stranger = Merchant(stock_service.url, accounts, f"{unique('s')}@shop.example")
    stranger.start()
    for proof in ("", "xls_" + "0" * 40, other_token, " "):
        answer = stranger.post("/profile", {"shop_url": shop, "shop_token": proof})
        assert answer.status_code == 422, answer.text
        assert "was registered with xlstock shop add" in answer.text
        assert "API token of the shop" in answer.text  # the field the message names
        assert "Hoodie" not in stranger.get("/stock").text
    with stock_service.store.transaction(write=True) as conn:
        conn.execute("UPDATE tokens SET revoked_at = '2026-01-01T00:00:00Z' WHERE hash = ?",
                     (hash_token(spare),))
    revoked = stranger.post("/profile", {"shop_url": shop, "shop_token": spare})
    assert revoked.status_code == 422
    owner = Merchant(stock_service.url, accounts, f"{unique('o')}@shop.example")
    owner.start()
    french = owner.post("/profile?lang=fr", {"shop_url": shop, "shop_token": ""})
    shown = html.unescape(french.text)
    assert "Jeton d'API de la boutique" in shown and "revendiquer" in shown
    claimed = owner.post("/profile", {"shop_url": shop, "shop_token": f" {script_token} "})
    assert claimed.url.endswith("done=claimed"), claimed.text
    assert "Hoodie" in owner.get("/stock").text


def test_changing_the_url_moves_the_stock_and_the_old_url_is_not_registered(stock_service,
                                                                            merchant):
    old, new = f"https://{unique('old')}.example", f"https://{unique('new')}.example"
    merchant.start(old)
    stock_service.store.register_shop(old, [StockItem("A-1", "Hoodie", "", 4)])
    token = merchant.create_token()
    answer = merchant.post("/profile", {"shop_url": new})
    assert answer.url.endswith("done=moved")
    assert f"Your stock is now under {new}" in answer.text
    moved = sync(stock_service.url, new, token)
    assert moved.status_code == 200
    assert [item["sku"] for item in moved.json()["items"]] == ["A-1"]
    gone = sync(stock_service.url, old, token)
    assert gone.status_code == 403 and gone.json()["error"]["code"] == "shop_not_registered"
    storefront = requests.get(stock_service.url + "/v1/storefront", params={"shop": old},
                              timeout=30)
    assert storefront.status_code == 404
    assert old not in stock_service.store.shops()


def test_a_url_holding_stock_of_its_own_is_refused_to_an_account_with_a_shop(stock_service,
                                                                            merchant):
    mine, scripted = f"https://{unique('mine')}.example", f"https://{unique('s')}.example"
    merchant.start(mine)
    stock_service.store.add_shop(scripted)
    answer = merchant.post("/profile", {"shop_url": scripted})
    assert answer.status_code == 422 and "stock of its own" in answer.text


# --- tokens ---------------------------------------------------------------------------


def test_a_revoked_token_is_refused_at_once_with_its_own_code(stock_service, merchant):
    shop = f"https://{unique('revoke')}.example"
    merchant.start(shop)
    keep, revoke = merchant.create_token(), merchant.create_token()
    assert sync(stock_service.url, shop, revoke).status_code == 200
    tokens = merchant.get("/tokens").text
    assert revoke[:10] in tokens and keep[:10] in tokens and revoke not in tokens
    revoke_id = re.search(
        rf"tokens/([0-9a-f]{{16}})\"><code>{re.escape(revoke[:10])}", tokens).group(1)
    answer = merchant.post(f"/tokens/{revoke_id}/revoke")
    assert answer.url.endswith("done=revoked")
    refused = sync(stock_service.url, shop, revoke)
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert error["code"] == "token_revoked"
    assert "was revoked on" in error["message"]
    assert f"{stock_service.url}/account/tokens" in error["message"]
    unknown = sync(stock_service.url, shop, "xls_never-issued").json()["error"]
    assert unknown["code"] == "unauthorized" and unknown["message"] != error["message"]
    assert sync(stock_service.url, shop, keep).status_code == 200
    assert "Revoked tokens" in merchant.get("/tokens").text


def test_the_tokens_page_shows_when_each_token_was_last_used(stock_service, merchant):
    shop = f"https://{unique('used')}.example"
    merchant.start(shop)
    token = merchant.create_token()
    assert re.search(r"<td>never</td>", merchant.get("/tokens").text)
    sync(stock_service.url, shop, token)
    row = re.search(r"<code>" + re.escape(token[:10]) + r"…</code></a></td>(.*?)</tr>",
                    merchant.get("/tokens").text, re.S).group(1)
    assert row.count(" UTC</td>") == 2  # created, last used
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", row), row
    french = re.search(r"<code>" + re.escape(token[:10]) + r"…</code></a></td>(.*?)</tr>",
                       merchant.get("/tokens?lang=fr").text, re.S).group(1)
    # the French pages write dates as the French workbook and commands do
    assert len(re.findall(r"<td>\d\d/\d\d/\d{4} \d\d:\d\d UTC</td>", french)) == 2, french


# --- stock levels and history ---------------------------------------------------------


def test_stock_levels_come_in_pages_of_100_with_search_and_low_rows(stock_service, merchant):
    shop = f"https://{unique('big')}.example"
    merchant.start(shop)
    merchant.switch_updates(True, low_stock_at=3)
    items = [StockItem(f"SKU-{n:04d}", f"Product {n}", "Red" if n % 2 else "", n % 50)
             for n in range(250)]
    stock_service.store.register_shop(shop, items)
    first = merchant.get("/stock").text
    assert first.count('<tr class="low">') + first.count("<tr>") == 101  # header + 100
    assert "Rows 1–100 of 250" in first and "SKU-0099" in first and "SKU-0100" not in first
    assert first.count('<tr class="low">') == 8  # levels 0..3 twice in 100 rows
    after = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = merchant.http.get(stock_service.url + after, timeout=30).text
    assert "Rows 101–200 of 250" in second and "SKU-0100" in second
    previous = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert "Rows 1–100 of 250" in merchant.http.get(stock_service.url + previous,
                                                    timeout=30).text
    last = merchant.get("/stock", params={"last": "1"}).text
    assert "Rows 151–250 of 250" in last and 'rel="next"' not in last
    found = merchant.get("/stock", params={"search": "product 12"}).text
    assert "Rows 1–11 of 11" in found  # 12, 120..129
    none = merchant.get("/stock", params={"search": "100%_"}).text
    assert "No product matches" in none
    nul = merchant.get("/stock", params={"search": "SKU\x000"})  # no NUL in PostgreSQL text
    assert nul.status_code == 200 and "No product matches" in nul.text
    after_nul = merchant.get("/stock", params={"after": "SKU-0001\x00"})
    assert after_nul.status_code == 200 and "SKU-0002" in after_nul.text


def test_history_lists_publishes_and_orders_newest_first_with_their_levels(stock_service,
                                                                           merchant):
    shop = f"https://{unique('hist')}.example"
    merchant.start(shop)
    stock_service.store.register_shop(shop, [StockItem("A-1", "Hoodie", "Red", 5),
                                             StockItem("B-2", "Cap", "", 9)])
    token = merchant.create_token()
    auth = {"Authorization": f"Bearer {token}"}
    ordered = requests.post(stock_service.url + "/v1/orders", params={"shop": shop},
                            headers=auth, timeout=30,
                            json={"lines": [{"sku": "A-1", "qty": 2}], "reference": "web-77"})
    assert ordered.status_code == 201
    etag = sync(stock_service.url, shop, token).headers["ETag"]
    published = requests.put(
        stock_service.url + "/v1/stock", params={"shop": shop}, timeout=30,
        headers={**auth, "If-Match": etag, "Idempotency-Key": "publish-1",
                 "Content-Type": "application/json"},
        json={"format": "xlstock.stock", "format_version": 2, "shop": shop,
              "items": [{"sku": "B-2", "from": 9, "qty": 20}]})
    assert published.status_code == 200, published.text
    page = merchant.get("/history").text
    rows = re.findall(r'<tr class="(\w+)">', page)
    assert rows == ["publish", "order", "catalogue"]
    assert page.index("publish-1") < page.index("web-77")
    assert re.search(r"<code>B-2</code> <span class=\"name\">Cap</span>: 9 → <strong>20",
                     page)
    assert re.search(r"<code>A-1</code> <span class=\"name\">Hoodie / Red</span>: 5 → "
                     r"<strong>3", page)
    french = merchant.get("/history?lang=fr").text  # French puts a space before a colon
    assert re.search(r"<span class=\"name\">Cap</span> : 9 → <strong>20", french), french


# --- languages ------------------------------------------------------------------------


def test_french_from_accept_language_and_a_switch_on_every_page(merchant):
    merchant.start(f"https://{unique('fr')}.example")
    for path in ["/stock", "/profile", "/services", "/tokens", "/history"]:
        french = merchant.get(path, headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
        assert '<html lang="fr">' in french.text, path
        assert "Niveaux de stock" in french.text and "Se déconnecter" in french.text
        assert f'href="/account{path}?lang=en"' in french.text, path
        english = merchant.get(path)
        assert '<html lang="en">' in english.text and "Stock levels" in english.text
        assert f'href="/account{path}?lang=fr"' in english.text
    switched = merchant.get("/services", params={"lang": "fr"})
    assert "Mise à jour automatique des niveaux de stocks" in switched.text
    assert "Mise à jour" in merchant.get("/services").text  # the choice is kept


def test_every_text_the_pages_use_has_its_french():
    sources = [path.read_text("utf-8") for path in TEMPLATES.glob("*.html")]
    pages = (ROOT / "xlstock" / "server" / "account" / "pages.py").read_text("utf-8")
    used = set()
    for text in sources:
        used |= set(re.findall(r'\bt\("((?:[^"\\]|\\.)*)"', text))
        used |= set(re.findall(r'\("[a-z]+", "([^"]+)"\)', text))
    for block in re.findall(r'\bt\(((?:\s*"[^"]*"\s*)+)', pages):
        used.add("".join(re.findall(r'"([^"]*)"', block)))
    from xlstock.server.account.pages import DONE, MESSAGES, SOURCES

    used |= set(DONE.values()) | set(MESSAGES.values()) | set(SOURCES.values())
    missing = sorted(text for text in used if text not in french())
    assert not missing
    assert len(used) > 60


def test_docs_list_every_label_of_the_issue_with_its_french():
    doc = (ROOT / "docs" / "account.md").read_text("utf-8")
    for label in ["Email", "Password", "Sign in", "New password", "Repeat new password",
                  "Save password", "Stock levels", "Account profile", "Services",
                  "API tokens", "History", "Sign out", "Shop URL", "Save",
                  "Automatic stock level update", "Create token", "Revoke", "Search"]:
        assert f"| {label} | {french()[label]} |" in doc, label
    for png in re.findall(r"\]\((account/[^)]+\.png)\)", doc):
        assert (ROOT / "docs" / png).stat().st_size < 400_000, png
    assert len(re.findall(r"\]\((account/[^)]+\.png)\)", doc)) >= 8


def test_a_database_from_before_the_accounts_keeps_its_shops_tokens_and_updates(tmp_path):
    import sqlite3

    from xlstock.server.storage import MIGRATIONS, hash_token, migrate

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.execute("INSERT INTO shops (id, url, epoch, created_at) VALUES "
                 "(1, 'https://old.example', 'abc', '2026-01-01T00:00:00Z')")
    conn.execute("INSERT INTO tokens (hash, shop_id, created_at) VALUES (?, 1, ?)",
                 (hash_token("xls_old"), "2026-01-01T00:00:00Z"))
    conn.close()
    store = StockStore(db)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.authenticate("xls_old") == "https://old.example"
        accounts = AccountStore(store)
        assert accounts.stock_updates_on("https://old.example")
        assert accounts.revocation("xls_old") is None
    finally:
        store.close()
