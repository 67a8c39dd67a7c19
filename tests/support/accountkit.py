"""Signing in to the account pages with requests (the browser tests use Playwright)."""

from __future__ import annotations

import html
import re

import requests

from xlstock.server.accounts import AccountStore

NEW_PASSWORD = "a new password, long enough"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


class Merchant:
    """A browser-like requests session on the account pages of ``base_url``."""

    def __init__(self, base_url: str, accounts: AccountStore, email: str) -> None:
        self.base = base_url + "/account"
        self.email, self.password, _ = accounts.add_account(email)
        self.http = requests.Session()
        self.csrf = ""

    def get(self, path: str, **kwargs) -> requests.Response:
        answer = self.http.get(self.base + path, timeout=30, **kwargs)
        if 'name="csrf_token"' in answer.text:
            self.csrf = csrf_of(answer.text)
        return answer

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True,
             **kwargs) -> requests.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        answer = self.http.post(self.base + path, data=form, timeout=30, **kwargs)
        if 'name="csrf_token"' in answer.text:
            self.csrf = csrf_of(answer.text)
        return answer

    def sign_in(self, password: str | None = None) -> requests.Response:
        self.get("/sign-in")
        return self.post("/sign-in", {"email": self.email, "password": password or self.password})

    def start(self, shop_url: str | None = None, *, updates: bool = True) -> requests.Response:
        """Sign in, choose a password, and register ``shop_url`` (updates switched on)."""
        answer = self.sign_in()
        assert answer.url.endswith("/account/password"), answer.url
        answer = self.post("/password", {"new_password": NEW_PASSWORD,
                                         "repeat_password": NEW_PASSWORD})
        assert answer.status_code == 200, answer.text
        self.password = NEW_PASSWORD
        if shop_url:
            answer = self.post("/profile", {"shop_url": shop_url})
            assert answer.status_code == 200 and "done" in answer.url, answer.text
            if updates:
                self.switch_updates(True)
        return answer

    def switch_updates(self, on: bool, low_stock_at: int = 5, *,
                       mail: bool = True) -> requests.Response:
        form = {"low_stock_at": str(low_stock_at)}
        if on:
            form["stock_updates"] = "on"
        if mail:
            form["low_stock_mail"] = "on"
        answer = self.post("/services", form)
        assert answer.status_code == 200 and answer.url.endswith("done=saved"), answer.text
        return answer

    def create_token(self) -> str:
        answer = self.post("/tokens")
        assert answer.status_code == 201, answer.text
        found = re.search(r'id="new-token">([^<]+)<', answer.text)
        assert found
        return html.unescape(found.group(1))

    def token_ids(self) -> list[str]:
        return re.findall(r"/account/tokens/([0-9a-f]{16})/revoke", self.get("/tokens").text)
