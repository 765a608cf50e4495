"""`GET .../events` with `query` (text) and `body` (JSON containment), answered from the
tables with the list's cursors."""

from __future__ import annotations

import json
import secrets
from typing import Any, Callable

import pytest

from tests.conftest import Api
from tests.integration.test_webhooks import make_source, post
from tests.support.workers import eventually

pytestmark = pytest.mark.integration


def listed(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get("/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_query_and_body_search(worker: Any, make_project: Callable[..., Api]) -> None:
    hooks = make_project("incoming")
    tag = secrets.token_hex(3)
    source = make_source(hooks, name=f"acme-billing-{tag}", verifier={"type": "noop"})
    other = make_source(hooks, name=f"other-{tag}", verifier={"type": "noop"})
    bodies = [{"customer": {"id": "cus_1", "tier": "gold"}, "items": [{"sku": "a"}, {"sku": "b"}], "n": 1},
              {"customer": {"id": "cus_2"}, "items": [{"sku": "b"}], "n": 2},
              {"customer": {"id": "cus_1"}, "items": [], "n": 3}]
    for body in bodies:
        assert post(worker.url, source, json.dumps(body).encode(), {"Content-Type": "application/json"}).status_code == 200
    assert post(worker.url, other, b'{"customer": {"id": "cus_1"}, "n": 4}', {"Content-Type": "application/json"}).status_code == 200
    eventually(lambda: len(listed(hooks)["content"]) == 4, timeout=30)

    def ns(**params: Any) -> list[int]:
        return [e["data"]["n"] for e in listed(hooks, **params)["content"]]

    assert ns(query=f"ACME-billing-{tag}"[:10]) == [3, 2, 1]  # part of the source's name, any case
    assert ns(body='{"customer":{"id":"cus_1"}}') == [4, 3, 1]
    assert ns(body='{"items":[{"sku":"b"}]}') == [2, 1]
    assert ns(body='{"customer":{"id":"cus_1"}}', sourceId=source["uid"]) == [3, 1]
    assert ns(body='{"customer":{"tier":"silver"}}') == []

    # The same cursor rules: one per page, newest first, nothing repeated or skipped.
    seen, cursor = [], ""
    while True:
        page = listed(hooks, body='{"customer":{"id":"cus_1"}}', perPage=1, **({"next_page_cursor": cursor} if cursor else {}))
        seen += [e["data"]["n"] for e in page["content"]]
        if not page["pagination"]["has_next_page"]:
            break
        cursor = page["pagination"]["next_page_cursor"]
    assert seen == [4, 3, 1]

    refused = hooks.get("/events", params={"body": "[1, 2]"})
    assert refused.status_code == 400 and refused.json()["status"] is False
