"""The security and caching headers of every kind of answer the service gives, set in one
place (issue 23, point 1): the API's JSON (documents, 304s, HEADs, errors), the account
pages, their stylesheet and their error pages; against the real service on loopback."""

from __future__ import annotations

import requests

from xlstock.model import StockItem

PAGE_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
PAGE_ONLY = ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy")


def api_headers_are_right(answer: requests.Response) -> None:
    what = f"{answer.request.method} {answer.url} -> {answer.status_code}"
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", what
    assert answer.headers.get("Cache-Control") == "no-cache", what
    for name in PAGE_ONLY:
        assert name not in answer.headers, (what, name)


def page_headers_are_right(answer: requests.Response, cache: str | None = "no-store") -> None:
    what = f"{answer.request.method} {answer.url} -> {answer.status_code}"
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", what
    assert answer.headers.get("Content-Security-Policy") == PAGE_POLICY, what
    assert answer.headers.get("X-Frame-Options") == "DENY", what
    assert answer.headers.get("Referrer-Policy") == "same-origin", what
    if cache is not None:
        assert answer.headers.get("Cache-Control") == cache, what


def test_every_api_answer_carries_nosniff_and_no_cache(stock_service, shop_factory):
    base = stock_service.url
    url, token = shop_factory([StockItem("A-1", "Mug", "", 3)])
    auth = {"Authorization": f"Bearer {token}"}
    document = requests.get(base + "/v1/stock", params={"shop": url}, headers=auth,
                            timeout=30)
    assert document.status_code == 200
    tag = document.headers["ETag"]
    answers = [
        document,
        requests.get(base + "/v1/health", timeout=30),
        requests.head(base + "/v1/stock", params={"shop": url}, headers=auth,
                      timeout=30),
        requests.get(base + "/v1/stock", params={"shop": url},
                     headers={**auth, "If-None-Match": tag}, timeout=30),
        requests.get(base + "/v1/storefront", params={"shop": url}, timeout=30),
        requests.get(base + "/v1/stock", params={"shop": url}, timeout=30),  # 401
        requests.get(base + "/v1/nowhere", timeout=30),  # 404
        requests.delete(base + "/v1/stock", timeout=30),  # 405
        requests.put(base + "/v1/stock", params={"shop": url}, data=b"{}",
                     headers={**auth, "Idempotency-Key": "k-1"}, timeout=30),  # 415
        requests.put(base + "/account/stock", timeout=30),  # 405 outside the pages' routes
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200, 200, 200, 304, 200, 401, 404, 405, 415, 405], statuses
    for answer in answers:
        api_headers_are_right(answer)


def test_every_page_answer_carries_the_pages_policy(stock_service):
    base = stock_service.url + "/account"
    session = requests.Session()
    sign_in = session.get(base + "/sign-in", timeout=30)
    assert sign_in.status_code == 200
    page_headers_are_right(sign_in)
    page_headers_are_right(session.get(base + "/no/such/page", timeout=30))  # 404 page
    refused = session.post(base + "/sign-in", data={"email": "a@b.example"}, timeout=30)
    assert refused.status_code == 400  # no CSRF token
    page_headers_are_right(refused)
    redirect = session.get(base + "/stock", timeout=30, allow_redirects=False)
    assert redirect.status_code == 303
    page_headers_are_right(redirect)
    style = session.get(base + "/static/account.css", timeout=30)
    assert style.status_code == 200 and "text/css" in style.headers["Content-Type"]
    page_headers_are_right(style, cache=None)
    assert style.headers.get("Cache-Control") != "no-store"  # a stylesheet may be kept
