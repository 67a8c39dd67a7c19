"""The online account in a real browser: Playwright driving Debian's chromium (never a
downloaded browser) against the session's real stock service, and the real `xlstock`
command line beside it, as a merchant would use them.

Each page is saved as a screenshot, into ``$XLSTOCK_SCREENSHOTS`` when set (the
pictures in docs/account/ are made with ``XLSTOCK_SCREENSHOTS=docs/account``), else into
the test run's temporary folder. The French pages go into ``$XLSTOCK_SCREENSHOTS_FR``
(the French guide's pictures: ``XLSTOCK_SCREENSHOTS_FR=docs/fr/images``), else into a
folder ``fr`` beside the others.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from xlstock import stockfile
from xlstock.model import StockItem
from xlstock.server.accounts import AccountStore

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
NEW_PASSWORD = "stock in Excel, sold online"
CATALOGUE = """sku,name,variant,qty
woo-hoodie-red,Hoodie,Red,12
woo-hoodie-blue,Hoodie,Blue,3
woo-cap,Cap,,25
woo-belt,Belt,,0
woo-beanie,Beanie,,7
woo-sunglasses,Sunglasses,,2
woo-tshirt-s,T-Shirt,S,18
woo-tshirt-m,T-Shirt,M,4
00123,Socks,Blue,40
"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the whole run (each test opens its own context)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): run "
                    "`apt-get install chromium`, or bash scripts/test.sh as root")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed: pip install -e '.[test]'")
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001 - a chromium that cannot start: say why
        playwright.stop()
        pytest.skip(f"chromium at {CHROMIUM} does not start under Playwright: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("XLSTOCK_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def screenshots_fr(screenshots: Path) -> Path:
    folder = os.environ.get("XLSTOCK_SCREENSHOTS_FR")
    path = Path(folder) if folder else screenshots / "fr"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Visit:
    """One browser (a context: its own cookies) on the account pages."""

    def __init__(self, browser: Any, base_url: str, shots: Path, locale: str = "en-GB"):
        self.context = browser.new_context(locale=locale, base_url=base_url,
                                           viewport={"width": 960, "height": 640})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.shots = shots
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message),
                                               dialog.dismiss()))

    def shot(self, name: str, *, full: bool = False) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full)

    def sign_in(self, email: str, password: str) -> None:
        page = self.page
        page.goto("/account/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()

    def start(self, email: str, password: str, shop: str | None = None) -> None:
        """First sign-in, a new password, and the shop URL."""
        self.sign_in(email, password)
        page = self.page
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Repeat new password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Save password").click()
        if shop:
            page.get_by_label("Shop URL").fill(shop)
            page.get_by_role("button", name="Save").click()
            assert "is registered" in page.locator(".done").inner_text()

    def nav(self, label: str) -> None:
        self.page.get_by_role("navigation", name="Account pages").get_by_role(
            "link", name=label).click()

    def switch_updates(self, on: bool) -> None:
        self.nav("Services")
        self.page.get_by_label("Automatic stock level update").set_checked(on)
        self.page.get_by_role("button", name="Save").click()
        assert self.page.locator(".done").inner_text() == "Saved."

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, stock_service, screenshots) -> Iterator[Any]:
    opened: list[Visit] = []

    def open_visit(locale: str = "en-GB") -> Visit:
        opened.append(Visit(browser, stock_service.url, screenshots, locale))
        return opened[-1]

    yield open_visit
    for one in opened:
        one.close()


def xlstock(*args: str, token: str | None = None, cwd: Path | None = None,
            expect: int | None = 0) -> subprocess.CompletedProcess:
    """The real command line, in its own process."""
    env = {k: v for k, v in os.environ.items() if k != "XLSTOCK_TOKEN"}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    if token:
        env["XLSTOCK_TOKEN"] = token
    done = subprocess.run([sys.executable, "-m", "xlstock", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)
    if expect is not None:
        assert done.returncode == expect, done.stdout + done.stderr
    return done


def new_account(stock_service, email: str) -> str:
    """``xlstock account add``; returns the one-time password (its last line)."""
    done = xlstock("account", "add", email, "--db", str(stock_service.store.path))
    return done.stdout.rstrip("\n").split("\n")[-1]


def test_a_merchant_registers_the_shop_switches_updates_on_and_syncs_with_a_token(
        stock_service, visit, tmp_path):
    base = stock_service.url
    shop = "https://corner-shop.example"
    email = "merchant@corner-shop.example"
    password = new_account(stock_service, email)
    merchant = visit()
    page = merchant.page

    # first sign-in with the one-time password, then a password of one's own
    page.goto("/account/")
    merchant.shot("sign-in")
    merchant.sign_in(email, password)
    assert page.url == f"{base}/account/password"
    assert page.get_by_role("button", name="Save password").is_visible()
    merchant.shot("new-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password").click()
    assert page.url.startswith(f"{base}/account/profile")
    assert "Your password is saved." in page.locator(".done").inner_text()
    for label in ["Stock levels", "Account profile", "Services", "API tokens", "History"]:
        assert page.get_by_role("link", name=label).is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()

    # the shop URL: refused when it is not a web address, normalised when saved
    page.get_by_label("Shop URL").fill("corner-shop.example")
    page.get_by_role("button", name="Save").click()
    assert "is not a web address" in page.locator("#shop-url-error").inner_text()
    page.get_by_label("Shop URL").fill("HTTPS://Corner-Shop.Example/")
    page.get_by_role("button", name="Save").click()
    assert f"The shop {shop} is registered" in page.locator(".done").inner_text()
    assert page.get_by_label("Shop URL").input_value() == shop
    merchant.shot("profile")
    catalogue = tmp_path / "products.csv"
    catalogue.write_text(CATALOGUE, encoding="utf-8")
    xlstock("shop", "add", shop, "--db", str(stock_service.store.path), "--catalogue",
            str(catalogue))  # a script loads the products into the merchant's shop

    # updates start off: switch them on
    merchant.nav("Services")
    assert not page.get_by_label("Automatic stock level update").is_checked()
    merchant.switch_updates(True)
    assert page.get_by_label("Automatic stock level update").is_checked()
    assert "is on" in page.locator("#updates-state").inner_text()
    merchant.shot("services")

    # a token, shown once
    merchant.nav("API tokens")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text()
    assert re.fullmatch(r"xls_[A-Za-z0-9_-]{43}", token)
    assert "shown only once" in page.locator(".new-token").inner_text()
    rows = page.locator("table.tokens tbody tr")
    assert rows.count() == 1  # `shop add --catalogue` on the registered shop made none
    merchant.shot("tokens")
    page.reload()
    assert token not in page.content()

    # a real Sync with it, an online sale, a Publish
    workbook = tmp_path / "stock.xlsx"
    xlstock("new", str(workbook), "--service", base, "--shop", shop)
    synced = xlstock("sync", str(workbook), "-q", token=token)
    assert "9" in synced.stdout
    xlstock("order", "--service", base, "--shop", shop, "--reference", "web-1001",
            "woo-cap=2", "woo-hoodie-red=1", token=token)
    book = openpyxl.load_workbook(workbook)
    sheet = book["Stock"]
    headers = {cell.value: cell.column for cell in sheet[1]}
    for row in range(2, sheet.max_row + 1):
        if sheet.cell(row, headers["SKU"]).value == "woo-belt":
            sheet.cell(row, headers["Received"]).value = 6
    book.save(workbook)
    xlstock("publish", str(workbook), "-q", token=token)

    # what the service holds, on the pages
    merchant.nav("Stock levels")
    assert page.locator("table.stock tbody tr").count() == 9
    low = page.locator("table.stock tr.low")
    assert sorted(low.locator("td code").all_inner_texts()) == [
        "woo-hoodie-blue", "woo-sunglasses", "woo-tshirt-m"]
    assert page.locator("tr", has_text="woo-belt").locator("td.number").inner_text() == "6"
    assert page.locator("tr", has_text="woo-cap").locator("td.number").inner_text() == "23"
    merchant.shot("stock-levels")
    page.get_by_label("Search").fill("hoodie")
    page.get_by_role("button", name="Search").click()
    assert page.locator("table.stock tbody tr").count() == 2
    merchant.nav("History")
    kinds = page.locator("table.history tbody tr td:nth-child(2)").all_inner_texts()
    assert kinds == ["Publish", "Order", "Catalogue"]
    order = page.locator("table.history tr.order")
    assert "web-1001" in order.inner_text() and "25 → 23" in order.inner_text()
    assert "0 → 6" in page.locator("table.history tr.publish").inner_text()
    merchant.shot("history", full=True)

    # updates off: sync is refused, and the message names the page
    merchant.switch_updates(False)
    refused = xlstock("sync", str(workbook), "-q", token=token, expect=4)
    assert "stock_updates_off" in refused.stderr
    assert f"{base}/account/services" in refused.stderr
    merchant.switch_updates(True)
    xlstock("sync", str(workbook), "-q", token=token)

    # revoked: refused at once, with its own message
    merchant.nav("API tokens")
    row = page.locator("table.tokens tbody tr", has_text=token[:10])
    row.get_by_role("button", name="Revoke").click()
    assert "revoked" in page.locator(".done").inner_text()
    assert page.locator("table.revoked", has_text=token[:10]).is_visible()
    revoked = xlstock("sync", str(workbook), "-q", token=token, expect=4)
    assert "401 token_revoked" in revoked.stderr
    assert "this API token was revoked on" in revoked.stderr
    assert f"{base}/account/tokens" in revoked.stderr
    assert token not in revoked.stderr + revoked.stdout
    unknown = xlstock("sync", str(workbook), "-q", token="xls_" + "x" * 43, expect=4)
    assert "401 unauthorized" in unknown.stderr and "revoked" not in unknown.stderr

    page.get_by_role("button", name="Sign out").click()
    assert "You are signed out." in page.locator(".done").inner_text()
    page.goto("/account/stock")
    assert page.url == f"{base}/account/sign-in"
    assert not merchant.dialogs


def test_french_labels_from_accept_language_and_the_switch(stock_service, visit):
    email = f"fr-{uuid.uuid4().hex[:8]}@boutique.example"
    password = new_account(stock_service, email)
    merchant = visit(locale="fr-FR")
    page = merchant.page
    page.goto("/account/")
    assert page.locator("html").get_attribute("lang") == "fr"
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Mot de passe", exact=True).fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_label("Nouveau mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Répétez le nouveau mot de passe").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Enregistrer le mot de passe").click()
    page.get_by_label("Adresse URL de la boutique").fill(
        f"https://boutique-{uuid.uuid4().hex[:8]}.example")
    page.get_by_role("button", name="Enregistrer").click()
    assert "est inscrite" in page.locator(".done").inner_text()
    for label in ["Niveaux de stock", "Profil du compte", "Services", "Jetons d'API",
                  "Historique"]:
        assert page.get_by_role("link", name=label, exact=True).is_visible()
    assert page.get_by_role("button", name="Se déconnecter").is_visible()
    page.get_by_role("link", name="Services", exact=True).click()
    assert page.get_by_label("Mise à jour automatique des niveaux de stocks").is_visible()
    merchant.shot("services-fr")
    page.get_by_role("link", name="English").click()
    assert page.get_by_label("Automatic stock level update").is_visible()
    page.get_by_role("link", name="API tokens").click()  # the choice is kept
    assert page.get_by_role("button", name="Create token").is_visible()


def test_a_form_without_its_csrf_token_is_refused_with_400(stock_service, visit):
    email = f"csrf-{uuid.uuid4().hex[:8]}@shop.example"
    merchant = visit()
    merchant.start(email, new_account(stock_service, email),
                   f"https://csrf-{uuid.uuid4().hex[:8]}.example")
    page = merchant.page
    merchant.nav("Services")
    page.locator("form.form input[name=csrf_token]").evaluate("field => field.remove()")
    page.get_by_label("Automatic stock level update").check()
    with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
        page.get_by_role("button", name="Save").click()
    assert posted.value.status == 400
    assert "security token is missing" in page.locator("p.error").inner_text()
    merchant.shot("error-400")
    merchant.nav("Services")
    assert not page.get_by_label("Automatic stock level update").is_checked()


def test_another_accounts_page_is_404_and_text_is_never_markup(stock_service, visit):
    owner_email = f"owner-{uuid.uuid4().hex[:8]}@shop.example"
    owner = visit()
    owner.start(owner_email, new_account(stock_service, owner_email),
                f"https://owner-{uuid.uuid4().hex[:8]}.example")
    owner.nav("API tokens")
    owner.page.get_by_role("button", name="Create token").click()
    token_page = owner.page.locator("table.tokens tbody tr a").first.get_attribute("href")
    assert token_page and re.fullmatch(r"/account/tokens/[0-9a-f]{16}", token_page)

    other_email = f"other-{uuid.uuid4().hex[:8]}@shop.example"
    other_shop = f"https://other-{uuid.uuid4().hex[:8]}.example"
    other = visit()
    other.start(other_email, new_account(stock_service, other_email), other_shop)
    answer = other.page.goto(token_page)
    assert answer is not None and answer.status == 404
    assert other.page.locator("h1").inner_text() == "Page not found"
    other.shot("error-404")
    assert owner.page.goto(token_page).status == 200
    assert owner.page.get_by_role("button", name="Revoke").is_visible()
    owner.shot("token")

    stock_service.store.register_shop(other_shop, [
        StockItem("x<1>", "<script>alert('stock')</script>", "<img src=x onerror=alert(1)>", 1)])
    other.nav("Stock levels")
    row = other.page.locator("table.stock tbody tr")
    assert row.locator("td").nth(1).inner_text() == "<script>alert('stock')</script>"
    assert row.locator("td").nth(2).inner_text() == "<img src=x onerror=alert(1)>"
    assert other.page.locator("main img").count() == 0
    assert not other.dialogs


def test_claiming_a_shop_registered_with_shop_add_asks_for_its_token(stock_service, visit,
                                                                     tmp_path):
    """Issue 19: any account could claim a shop `shop add` registered and read its stock.
    The page says what to enter; the token `shop add` printed claims it."""
    shop = f"https://scripted-{uuid.uuid4().hex[:8]}.example"
    catalogue = tmp_path / "products.csv"
    catalogue.write_text(CATALOGUE, encoding="utf-8")
    added = xlstock("shop", "add", shop, "--db", str(stock_service.store.path),
                    "--catalogue", str(catalogue))
    token = added.stdout.rstrip("\n").split("\n")[-1]
    email = f"claimer-{uuid.uuid4().hex[:8]}@shop.example"
    merchant = visit()
    merchant.start(email, new_account(stock_service, email))
    page = merchant.page
    page.get_by_label("Shop URL").fill(shop + ".")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#shop-url-error").inner_text()
    assert f"{shop} was registered with xlstock shop add" in error
    assert "API token of the shop" in error
    merchant.nav("Stock levels")
    assert page.locator("table.stock").count() == 0
    merchant.nav("Account profile")
    page.get_by_label("Shop URL").fill(shop)
    page.get_by_label("API token of the shop").fill(token)
    page.get_by_role("button", name="Save").click()
    assert f"Your account now holds the shop {shop}." in page.locator(".done").inner_text()
    merchant.nav("Stock levels")
    assert page.locator("table.stock tbody tr").count() == 9


def test_a_merchant_undoes_a_mistaken_publish_from_the_history(stock_service, visit):
    """Issue 21: 100 typed for 10 in Received, published, 3 sold since; History, Undo,
    the preview, the confirmation, and the level back at what it was less the sales."""
    shop = f"https://undo-{uuid.uuid4().hex[:8]}.example"
    email, password, _ = AccountStore(stock_service.store).add_account(
        f"undo-{uuid.uuid4().hex[:8]}@shop.example")
    merchant = visit()
    merchant.start(email, password, shop)
    merchant.switch_updates(True)
    token = stock_service.store.register_shop(shop, [
        StockItem("woo-hoodie-red", "Hoodie", "Red", 12), StockItem("woo-cap", "Cap", "", 25)],
        another_token=True).token
    auth = {"Authorization": f"Bearer {token}"}
    published = requests.put(
        stock_service.url + "/v1/stock", params={"shop": shop}, timeout=30,
        data=stockfile.dumps(shop, {"woo-hoodie-red": 112, "woo-cap": 30},
                             {"woo-hoodie-red": 12, "woo-cap": 25}, {"woo-hoodie-red": 100}),
        headers={**auth, "Idempotency-Key": "2026-12-06 publish 1",
                 "Content-Type": "application/json"})
    assert published.status_code == 200, published.text
    sold = requests.post(stock_service.url + "/v1/orders", params={"shop": shop},
                         headers=auth, timeout=30,
                         json={"lines": [{"sku": "woo-hoodie-red", "qty": 3}]})
    assert sold.status_code == 201, sold.text
    page = merchant.page

    merchant.nav("History")
    publish_row = page.locator("tr.publish")
    assert "2026-12-06 publish 1" in publish_row.inner_text()
    publish_row.get_by_role("link", name="Undo").click()
    assert page.get_by_role("heading", name="Undo a publish").is_visible()
    rows = page.locator("table.undo tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().split("\t") == ["woo-cap", "30", "-5", "25"]
    assert rows.nth(1).inner_text().split("\t") == ["woo-hoodie-red", "109", "-100", "9"]
    merchant.shot("undo-preview")
    page.get_by_role("button", name="Confirm the undo").click()
    assert page.get_by_role("heading", name="Publish undone").is_visible()
    assert "2 levels moved back" in page.locator(".done").inner_text()
    merchant.shot("undo-done")

    merchant.nav("History")
    assert "Undo of publish 2026-12-06 publish 1" in page.locator("tr.undo").inner_text()
    assert "Undone on" in page.locator("tr.publish").inner_text()
    assert page.locator("tr.publish").get_by_role("link", name="Undo").count() == 0
    merchant.nav("Stock levels")
    levels = {row.split("\t")[0].strip(): row for row in
              page.locator("table tbody tr").all_inner_texts()}
    assert "\t9" in levels["woo-hoodie-red"] and "\t25" in levels["woo-cap"]
    assert merchant.dialogs == []


CATALOGUE_FR = """sku,name,variant,qty
sweat-rouge,Sweat à capuche,Rouge,12
sweat-bleu,Sweat à capuche,Bleu,3
casquette,Casquette,,25
ceinture,Ceinture,,0
bonnet,Bonnet,,7
lunettes,Lunettes de soleil,,2
tshirt-s,T-shirt,S,18
tshirt-m,T-shirt,M,4
00123,Chaussettes,Bleu,40
"""
FRENCH_PAGES = ["Niveaux de stock", "Profil du compte", "Services", "Jetons d'API",
                "Historique"]


def test_a_french_merchant_goes_through_every_page_in_french(
        browser, stock_service, screenshots_fr, tmp_path):
    """Issue 20 point 5: a merchant whose browser speaks French signs in, registers the
    shop, switches the automatic updates on, creates a token, syncs and publishes a
    French workbook with it, reads the stock levels and the history, and undoes the
    publish; every page is in French (the French guide's pictures, docs/fr/images)."""
    base = stock_service.url
    shop = f"https://boutique-{uuid.uuid4().hex[:8]}.example"
    email = f"commercant-{uuid.uuid4().hex[:8]}@boutique.example"
    password = new_account(stock_service, email)
    merchant = Visit(browser, base, screenshots_fr, locale="fr-FR")
    page = merchant.page
    try:
        def nav(label: str) -> None:
            page.get_by_role("navigation", name="Pages du compte").get_by_role(
                "link", name=label, exact=True).click()

        page.goto("/account/")
        assert page.locator("html").get_attribute("lang") == "fr"
        assert page.get_by_role("button", name="Se connecter").is_visible()
        assert "Pas encore de compte ?" in page.locator("main").inner_text()
        merchant.shot("connexion")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Mot de passe", exact=True).fill(password)
        page.get_by_role("button", name="Se connecter").click()
        assert page.url == f"{base}/account/password"
        assert "mot de passe à usage unique" in page.locator("main").inner_text()
        merchant.shot("mot-de-passe")
        page.get_by_label("Nouveau mot de passe", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Répétez le nouveau mot de passe").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Enregistrer le mot de passe").click()
        assert "Votre mot de passe est enregistré." in page.locator(".done").inner_text()
        for label in FRENCH_PAGES:
            assert page.get_by_role("link", name=label, exact=True).is_visible()

        shop_field = page.get_by_label(re.compile(r"^Adresse (URL )?de la boutique$"))
        shop_field.fill("boutique.example")
        page.get_by_role("button", name="Enregistrer", exact=True).click()
        assert "n'est pas une adresse web" in page.locator("#shop-url-error").inner_text()
        shop_field.fill(shop)
        page.get_by_role("button", name="Enregistrer", exact=True).click()
        assert f"La boutique {shop} est inscrite" in page.locator(".done").inner_text()
        merchant.shot("profil")
        catalogue = tmp_path / "produits.csv"
        catalogue.write_text(CATALOGUE_FR, encoding="utf-8")
        xlstock("shop", "add", shop, "--db", str(stock_service.store.path), "--catalogue",
                str(catalogue))

        nav("Services")
        updates = page.get_by_label(
            re.compile(r"^Mise à jour automatique des niveaux de stocks?$"))
        assert "est désactivée" in page.locator("#updates-state").inner_text()
        updates.check()
        page.get_by_role("button", name="Enregistrer", exact=True).click()
        assert page.locator(".done").inner_text() == "Enregistré."
        assert updates.is_checked()
        assert "est activée" in page.locator("#updates-state").inner_text()
        merchant.shot("services")

        nav("Jetons d'API")
        page.get_by_role("button", name="Créer un jeton").click()
        token = page.locator("#new-token").inner_text()
        assert re.fullmatch(r"xls_[A-Za-z0-9_-]{43}", token)
        assert "n'est affiché qu'une fois" in page.locator(".new-token").inner_text()
        merchant.shot("jetons")

        # the daily loop on a French workbook, with that token
        workbook = tmp_path / "stock.xlsx"
        xlstock("new", str(workbook), "--service", base, "--shop", shop, "--lang", "fr")
        xlstock("sync", str(workbook), "-q", token=token)
        xlstock("order", "--service", base, "--shop", shop, "--reference", "web-1001",
                "casquette=2", token=token)
        book = openpyxl.load_workbook(workbook)
        sheet = book["Stock"]
        headers = {cell.value: cell.column for cell in sheet[1]}
        for row in range(2, sheet.max_row + 1):
            if sheet.cell(row, headers["SKU"]).value == "ceinture":
                sheet.cell(row, headers["Reçu"]).value = 6
        book.save(workbook)
        xlstock("publish", str(workbook), "-q", token=token)

        nav("Niveaux de stock")
        assert page.locator("table.stock tbody tr").count() == 9
        assert sorted(page.locator("table.stock tr.low td code").all_inner_texts()) == [
            "lunettes", "sweat-bleu", "tshirt-m"]
        assert page.locator("tr", has_text="ceinture").locator(
            "td.number").inner_text() == "6"
        assert page.get_by_role("columnheader", name="Produit").is_visible()
        merchant.shot("niveaux-de-stock")

        nav("Historique")
        kinds = page.locator("table.history tbody tr td:nth-child(2)").all_inner_texts()
        assert kinds == ["Publication", "Commande", "Catalogue"]
        assert "25 → 23" in page.locator("table.history tr.order").inner_text()
        merchant.shot("historique", full=True)

        page.locator("tr.publish").get_by_role("link", name="Annuler").click()
        assert page.get_by_role("heading", name="Annuler une publication").is_visible()
        assert page.locator("table.undo tbody tr").inner_text().split("\t") == [
            "ceinture", "6", "-6", "0"]
        merchant.shot("annulation")
        page.get_by_role("button", name="Confirmer l'annulation").click()
        assert page.get_by_role("heading", name="Publication annulée").is_visible()
        assert re.search(r"\b1 niveau\(x\) remis en arrière",
                         page.locator(".done").inner_text())
        merchant.shot("annulation-faite")

        page.get_by_role("button", name="Se déconnecter").click()
        assert "Vous êtes déconnecté." in page.locator(".done").inner_text()
        assert not merchant.dialogs
    finally:
        merchant.close()
