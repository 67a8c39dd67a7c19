"""docs/protocol.md stays in step with the service: every route and every error code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xlstock.server.accounts import API_CODES
from xlstock.server.app import _CODES, OTHER_CODES, create_app
from xlstock.server.storage import StockStore

PROTOCOL = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text("utf-8")
ERROR_CODES = sorted(set(_CODES.values()) | set(OTHER_CODES) | set(API_CODES))


def routes(tmp_path: Path) -> list[tuple[str, str]]:
    store = StockStore(tmp_path / "docs.db")
    try:
        app = create_app(store)
        found = []
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/v1/"):
                continue  # the account pages (docs/account.md)
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((method, path))
        return found
    finally:
        store.close()


def test_every_route_has_its_section_with_a_request_and_an_answer(tmp_path):
    found = routes(tmp_path)
    assert len(found) == 8
    sections = re.split(r"\n## ", PROTOCOL)
    for method, path in found:
        section = next((s for s in sections if s.startswith(f"{method} {path}\n")), None)
        assert section is not None, f"docs/protocol.md lacks a section '## {method} {path}'"
        assert f"{method} {path.split('{')[0]}" in section.split("\n", 1)[1]
        assert "HTTP/1.1 2" in section


def test_every_documented_endpoint_exists(tmp_path):
    documented = set(re.findall(r"^## (GET|PUT|POST|DELETE) (\S+)$", PROTOCOL, re.M))
    assert documented == set(routes(tmp_path))


@pytest.mark.parametrize("code", ERROR_CODES)
def test_every_error_code_has_an_example_answer(code):
    assert f'{{"error":{{"code":"{code}"' in PROTOCOL, code
    assert f"`{code}`" in PROTOCOL
