"""Replay from the dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

What a user does: replay one event from its page and watch its second delivery to the same
endpoint appear; replay every event the event log's filters select, after a confirmation that
says how many; and what they must not be able to do: replay without the form's CSRF token,
replay another project's events, replay a duplicate, or batch-replay with a search text.

Screenshots are saved in `<basetemp>/screenshots/`.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.browser.test_dashboard import WAIT_MS, chromium_path, key_of, sign_in
from tests.conftest import Api
from tests.support.workers import eventually

pytestmark = pytest.mark.integration

#: A replay's deliveries appear once the pipeline applied its command: generous on a busy machine.
APPLIED_MS = 90_000


def deliveries_of(api: Api, event_uid: str) -> list[dict[str, Any]]:
    return api.get("/eventdeliveries", params={"eventId": event_uid}).json()["data"]["content"]


@pytest.fixture(scope="module")
def shop(worker: Any, make_project: Callable[..., Api]) -> dict[str, Any]:
    """An outgoing project with one endpoint: one invoice, three shipments, and a duplicate."""
    api = make_project("outgoing")
    assert api.put("", {"name": "storefront"}).status_code == 202
    sink = api.post("/endpoints", {"name": "billing-service", "url": "https://example.com/hooks"}).json()["data"]
    tag = secrets.token_hex(3)
    shipped = f"order.shipped.{tag}"

    def send(event_type: str, key: str = "") -> dict[str, Any]:
        created = api.post("/events", {"endpoint_id": sink["uid"], "event_type": event_type, "data": {"tag": tag},
                                       **({"idempotency_key": key} if key else {})})
        assert created.status_code == 201, created.text
        return created.json()["data"]

    invoice = send(f"invoice.paid.{tag}", key=f"inv-{tag}")
    duplicate = send(f"invoice.paid.{tag}", key=f"inv-{tag}")
    shipments = [send(shipped) for _ in range(3)]
    for event in (invoice, *shipments):
        eventually(lambda: len(deliveries_of(api, event["uid"])) == 1, timeout=60)
    eventually(lambda: api.get(f"/events/{duplicate['uid']}").status_code == 200, timeout=60)
    return {"api": api, "sink": sink, "invoice": invoice, "duplicate": duplicate, "shipments": shipments,
            "shipped": shipped, "stranger": make_project("outgoing")}


@pytest.fixture(scope="module")
def browser(shop: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Any, worker: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=worker.url, viewport={"width": 1280, "height": 640})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    try:
        yield tab
    finally:
        context.close()


def test_replay_one_event_from_its_page_adds_a_second_delivery_to_the_same_endpoint(
        page: Any, shop: dict[str, Any], shots: Path) -> None:
    api, invoice = shop["api"], shop["invoice"]
    sign_in(page, key_of(api))
    page.goto(f"/ui/projects/{api.project_id}/events/{invoice['uid']}")
    rows = page.locator("#deliveries tbody tr")
    assert rows.count() == 1

    page.click("#replay-slot button:has-text('Replay')")
    page.wait_for_url(re.compile(r"\?replayed=\w+"))
    # "Replay queued" (the page reloads itself) until the pipeline applied the command.
    page.locator("#replay-notice.alert-success").wait_for(timeout=APPLIED_MS)
    assert "Replayed: 1 new delivery" in page.locator("#replay-notice").inner_text()
    assert rows.count() == 2
    texts = [rows.nth(i).inner_text() for i in range(2)]
    assert all("billing-service" in text for text in texts)
    [new] = [text for text in texts if "NEW" in text.upper().split()]
    new_uid = new.split()[0]
    assert new_uid.startswith(invoice["uid"])
    page.screenshot(path=str(shots / "event-replayed.png"), full_page=True)

    # The API sees the same: a second delivery of the event, to the same endpoint.
    found = eventually(lambda: [d for d in [deliveries_of(api, invoice["uid"])] if len(d) == 2], timeout=30)[0]
    assert {d["endpoint_id"] for d in found} == {shop["sink"]["uid"]} and new_uid in {d["uid"] for d in found}
    assert page.errors == []


def test_replay_all_that_match_confirms_the_count_then_says_how_many_were_replayed(
        page: Any, shop: dict[str, Any], shots: Path) -> None:
    api, shipments = shop["api"], shop["shipments"]
    invoice_before = len(deliveries_of(api, shop["invoice"]["uid"]))
    sign_in(page, key_of(api))
    page.goto(f"/ui/projects/{api.project_id}/events?eventType={shop['shipped']}")
    assert page.locator("#events tbody tr").count() == 3
    page.click("#replay-all")
    page.wait_for_url(re.compile(r"/replay\?eventType="))
    assert page.locator("#replay-count").inner_text() == "3 events"
    assert shop["shipped"] in page.locator("#replay").inner_text()
    page.screenshot(path=str(shots / "replay-confirm.png"), full_page=True)
    for event in shipments:  # nothing is replayed before the confirmation
        assert len(deliveries_of(api, event["uid"])) == 1

    page.click("button:has-text('Replay 3 events')")
    assert "3 successful, 0 failed" in page.locator("#replay-result").inner_text()
    page.screenshot(path=str(shots / "replay-result.png"), full_page=True)
    for event in shipments:
        eventually(lambda: len(deliveries_of(api, event["uid"])) == 2, timeout=APPLIED_MS / 1000)
    assert len(deliveries_of(api, shop["invoice"]["uid"])) == invoice_before  # another event type: not selected

    # A search text is not a batch replay filter (as in the API): refused, no button.
    page.goto(f"/ui/projects/{api.project_id}/events?query={shop['shipped']}")
    page.click("#replay-all")
    assert "does not support search filters" in page.locator(".alert-error").inner_text()
    assert page.locator("#replay form").count() == 0
    assert page.errors == []


def test_replay_needs_the_csrf_token_the_projects_own_key_and_an_original(page: Any, shop: dict[str, Any]) -> None:
    api, stranger, invoice = shop["api"], shop["stranger"], shop["invoice"]
    before = len(deliveries_of(api, invoice["uid"]))
    replay_one = f"/ui/projects/{api.project_id}/events/{invoice['uid']}/replay"
    replay_all = f"/ui/projects/{api.project_id}/replay"

    # Signed out: nothing happens, the browser is sent to sign in.
    response = page.request.post(replay_one, form={}, max_redirects=0)
    assert response.status in (303, 403)

    sign_in(page, key_of(api))
    assert page.request.post(replay_one, form={"csrf": "forged"}).status == 403
    assert page.request.post(replay_all, form={"csrf": "forged", "eventType": shop["shipped"]}).status == 403
    # A duplicate has no Replay button (its original is the event to replay).
    page.goto(f"/ui/projects/{api.project_id}/events/{shop['duplicate']['uid']}")
    assert page.locator("#replay-slot button").count() == 0

    # Another project's key: "not found", nothing of the project shown, nothing replayed.
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/ui/signin"))
    sign_in(page, key_of(stranger))
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    for response in (page.request.post(replay_one, form={"csrf": csrf}),
                     page.request.post(replay_all, form={"csrf": csrf}),
                     page.request.get(f"{replay_all}?eventType={shop['shipped']}")):
        assert response.status == 404
        assert invoice["uid"] not in response.text() and "billing-service" not in response.text()
    assert len(deliveries_of(api, invoice["uid"])) == before
