"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

What a user does: sign in, find events from a Kafka and an SQS source by broker message id
(through the URL and through the search box), open an event, see a webhook with a bad
signature in the request log and retry it once the secret is fixed, and what they must not
be able to do: run a payload's script, see another project, see anything signed out, or
change anything without the form's CSRF token.

Screenshots of the main pages are saved in `<basetemp>/screenshots/`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import ADMIN_TOKEN, Api
from tests.integration.test_webhooks import hexsig, hmac_config, make_source, post
from tests.support.workers import eventually

pytestmark = pytest.mark.integration

GOOD, STALE = "whsec-the-right-one", "whsec-a-stale-one"
XSS_SCRIPT = "<script>window.__xss = 'script'</script>"
XSS_IMG = "<img src=x onerror=\"window.__xss='img'\">"
WAIT_MS = 30_000


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Debian's chromium is not installed: run `make services` (scripts/install-services.sh)",
                    pytrace=False)
    return found


@pytest.fixture(scope="module")
def scene(worker: Any, make_project: Callable[..., Api], kafka_broker: Any, sqs_server: str) -> dict[str, Any]:
    """Projects, sources and events the pages show, made through the API and the brokers."""
    shop = make_project("outgoing")
    assert shop.put("", {"name": "storefront"}).status_code == 202
    sink = shop.post("/endpoints", {"name": "billing-service", "url": "https://example.com/hooks"}).json()["data"]
    tag = secrets.token_hex(3)

    topic = f"orders-{tag}"
    kafka_source = shop.post("/sources", {"name": "orders-topic", "type": "pub_sub", "pub_sub": {
        "workers": 1, "type": "kafka", "kafka": {"brokers": [], "topic_name": topic}}})
    assert kafka_source.status_code == 201, kafka_source.text
    sqs = boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test")
    queue = f"payments-{tag}"
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sqs_source = shop.post("/sources", {"name": "payments-queue", "type": "pub_sub", "pub_sub": {
        "workers": 1, "type": "sqs", "sqs": {"access_key_id": "test", "secret_key": "test",
                                             "default_region": "us-east-1", "queue_name": queue, "endpoint": sqs_server}}})
    assert sqs_source.status_code == 201, sqs_source.text

    kafka_id = f"order-{tag}"

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
        await producer.start()
        try:
            body = {"endpoint_id": sink["uid"], "event_type": "order.placed", "data": {"order": tag, "total": 129.5}}
            await producer.send_and_wait(topic, json.dumps(body).encode(), key=kafka_id.encode())
        finally:
            await producer.stop()

    asyncio.run(produce())
    sqs_body = {"endpoint_id": sink["uid"], "event_type": "payment.captured", "data": {"payment": tag, "amount": 42}}
    sqs_id = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(sqs_body))["MessageId"]

    for i, kind in enumerate(["invoice.paid", "invoice.created", "customer.updated"]):
        shop.post("/events", {"endpoint_id": sink["uid"], "event_type": kind, "data": {"n": i},
                              "idempotency_key": f"inv-{tag}-{i}"})
    shop.post("/events", {"endpoint_id": sink["uid"], "event_type": "invoice.paid", "data": {"n": 0},
                          "idempotency_key": f"inv-{tag}-0"})  # a duplicate
    xss = shop.post("/events", {"endpoint_id": sink["uid"], "event_type": "profile.updated",
                                "data": {"name": XSS_SCRIPT, "avatar": XSS_IMG},
                                "custom_headers": {"x-note": XSS_IMG}, "idempotency_key": XSS_IMG}).json()["data"]

    by_id = {}
    for broker_id in (kafka_id, sqs_id):
        [found] = eventually(lambda: shop.get("/events", params={"brokerMessageId": broker_id}).json()["data"]["content"],
                             timeout=60)
        by_id[broker_id] = found
    eventually(lambda: shop.get(f"/events/{xss['uid']}").status_code == 200, timeout=30)

    # An incoming project whose webhook source has a stale secret: the sender signs with the right one.
    hooks = make_project("incoming")
    assert hooks.put("", {"name": "payment-webhooks"}).status_code == 202
    source = make_source(hooks, name=f"psp-{tag}", verifier=hmac_config(STALE))
    marker = f"charge-{tag}"
    body = json.dumps({"type": "charge.succeeded", "id": marker}).encode()
    refused = post(worker.url, source, body, {"X-Signature": hexsig(GOOD, body), "Content-Type": "application/json"})
    assert refused.status_code == 400
    # Two more ways to be turned away: a method the ingest URL does not take, and a body too large.
    assert httpx.delete(f"{worker.url}/ingest/{source['mask_id']}", timeout=15).status_code == 405
    big = json.dumps({"type": "report.ready", "rows": ["x" * 100] * 600}).encode()
    assert post(worker.url, source, big, {"X-Signature": hexsig(GOOD, big)}).status_code == 413
    eventually(lambda: len(hooks.get("/requests").json()["data"]["content"]) == 3, timeout=30)
    return {"shop": shop, "kafka_id": kafka_id, "sqs_id": sqs_id, "kafka_event": by_id[kafka_id],
            "sqs_event": by_id[sqs_id], "xss": xss, "hooks": hooks, "source": source, "marker": marker,
            "stranger": make_project("outgoing")}


@pytest.fixture(scope="module")
def browser(scene: dict[str, Any]) -> Iterator[Any]:
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
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=worker.url)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    tab.errors = errors
    try:
        yield tab
    finally:
        context.close()


def sign_in(page: Any, token: str, next_path: str = "") -> None:
    page.goto("/ui/signin" + (f"?next={next_path}" if next_path else ""))
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def key_of(api: Api) -> str:
    return str(api.http.headers["Authorization"]).split(" ", 1)[1]


def test_sign_in_and_find_broker_events_by_url_and_search_box(page: Any, scene: dict[str, Any], shots: Path) -> None:
    shop = scene["shop"]
    sign_in(page, key_of(shop))
    assert page.url.endswith(f"/ui/projects/{shop.project_id}/events")
    rows = page.locator("#events tbody tr")
    assert rows.count() >= 6
    assert page.locator("#events .badge-dup").count() == 1  # the repeated idempotency key
    page.screenshot(path=str(shots / "event-log.png"), full_page=True)

    # Each broker's message by its broker message id (Kafka: the record key; SQS: the MessageId),
    # through the URL and through the search box.
    for broker_id, found in ((scene["kafka_id"], scene["kafka_event"]), (scene["sqs_id"], scene["sqs_event"])):
        page.goto(f"/ui/projects/{shop.project_id}/events?brokerMessageId={broker_id}")
        assert rows.count() == 1 and found["uid"] in rows.first.inner_text()
        page.goto(f"/ui/projects/{shop.project_id}/events")
        page.fill("input[name=query]", broker_id)
        page.press("input[name=query]", "Enter")
        page.wait_for_url(re.compile(r"query="))
        assert rows.count() == 1 and found["uid"] in rows.first.inner_text()

    # Its page: payload, broker message id, source, and its delivery.
    rows.first.locator("a.mono").click()
    page.wait_for_url(re.compile(r"/events/" + scene["sqs_event"]["uid"]))
    assert json.loads(page.locator("#payload").inner_text())["amount"] == 42
    meta = page.locator(".meta").inner_text()
    assert scene["sqs_id"] in meta and "payments-queue" in meta
    assert page.locator("#deliveries tbody tr").count() == 1
    assert "billing-service" in page.locator("#deliveries").inner_text()
    assert page.locator("#replay-slot").count() == 1
    page.screenshot(path=str(shots / "event.png"), full_page=True)

    page.goto(f"/ui/projects/{shop.project_id}/sources")
    table = page.locator("#sources").inner_text()
    assert "orders-topic" in table and "payments-queue" in table and "connected" in table
    page.screenshot(path=str(shots / "sources.png"), full_page=True)
    page.goto(f"/ui/projects/{shop.project_id}/deliveries?brokerMessageId={scene['kafka_id']}")
    assert page.locator("#deliveries tbody tr").count() == 1
    page.screenshot(path=str(shots / "deliveries.png"), full_page=True)
    assert page.errors == []


def test_live_tail_shows_new_events_without_a_reload(page: Any, scene: dict[str, Any]) -> None:
    shop = scene["shop"]
    sign_in(page, key_of(shop))
    page.click("text=Live tail")
    page.wait_for_url(re.compile(r"live=1"))
    sink = shop.get("/endpoints").json()["data"]["content"][0]["uid"]
    kind = f"tail.{secrets.token_hex(3)}"
    shop.post("/events", {"endpoint_id": sink, "event_type": kind, "data": {}})
    page.locator("#events").get_by_text(kind).wait_for()


def test_a_bad_signature_is_in_the_request_log_and_retries_into_an_event_once_fixed(
        page: Any, scene: dict[str, Any], shots: Path) -> None:
    hooks, source = scene["hooks"], scene["source"]
    sign_in(page, key_of(hooks))
    page.goto(f"/ui/projects/{hooks.project_id}/sources")
    ingest_url = f"{hooks.base}/ingest/{source['mask_id']}"
    assert ingest_url in page.locator("#sources").inner_text()
    page.locator(f"button[data-copy='{ingest_url}']").click()
    assert page.evaluate("navigator.clipboard.readText()") == ingest_url

    page.goto(f"/ui/projects/{hooks.project_id}/requests")
    assert page.locator("#requests tbody tr").count() == 3
    page.screenshot(path=str(shots / "request-log.png"), full_page=True)
    page.select_option("select[name=cause]", "verification_failed")
    page.click("text=Filter")
    page.wait_for_url(re.compile(r"cause=verification_failed"))
    row = page.locator("#requests tbody tr")
    assert row.count() == 1
    assert "Verification failed" in row.inner_text() and scene["marker"] in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_url(re.compile(r"/requests/"))

    # Still the stale secret: refused again, nothing stored.
    page.click("text=Retry with the current source config")
    assert "Retry refused: Request verification failed" in page.locator(".alert-error").inner_text()
    page.screenshot(path=str(shots / "request.png"), full_page=True)

    fixed = hooks.put(f"/sources/{source['uid']}", {"name": source["name"], "type": "http", "verifier": hmac_config(GOOD)})
    assert fixed.status_code == 202, fixed.text
    page.click("text=Retry with the current source config")
    page.wait_for_url(re.compile(r"/events/\w+\?retried="))
    assert "passed verification" in page.locator(".alert-success").inner_text()
    payload = json.loads(page.locator("#payload").inner_text())
    assert payload == {"type": "charge.succeeded", "id": scene["marker"]}
    assert page.errors == []


def test_a_payload_with_script_or_onerror_runs_nothing(page: Any, scene: dict[str, Any], shots: Path) -> None:
    shop, xss = scene["shop"], scene["xss"]
    sign_in(page, key_of(shop))
    response = page.goto(f"/ui/projects/{shop.project_id}/events/{xss['uid']}")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    text = page.locator("#payload").inner_text()
    assert XSS_SCRIPT in text.replace("\\\"", "\"") and "onerror" in text  # shown as text
    assert XSS_IMG in page.locator(".meta").inner_text()  # the idempotency key, as text
    page.screenshot(path=str(shots / "event-xss.png"), full_page=True)
    page.goto(f"/ui/projects/{shop.project_id}/events?query=profile.updated")
    page.goto(f"/ui/projects/{shop.project_id}/events?idempotencyKey={httpx.QueryParams({'k': XSS_IMG})['k']}")
    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0 and page.errors == []


def test_another_projects_key_sees_nothing_of_this_project(page: Any, scene: dict[str, Any]) -> None:
    shop, stranger = scene["shop"], scene["stranger"]
    sign_in(page, key_of(stranger))
    for path in (f"/ui/projects/{shop.project_id}/events", f"/ui/projects/{shop.project_id}/events/{scene['kafka_event']['uid']}",
                 f"/ui/projects/{shop.project_id}/requests", f"/ui/projects/{shop.project_id}/sources"):
        response = page.goto(path)
        assert response.status == 404, path
        body = page.content()
        assert scene["kafka_event"]["uid"] not in body and "orders-topic" not in body


def test_signed_out_no_event_data_is_shown(page: Any, scene: dict[str, Any]) -> None:
    shop = scene["shop"]
    page.goto(f"/ui/projects/{shop.project_id}/events/{scene['kafka_event']['uid']}")
    assert "/ui/signin" in page.url
    body = page.content()  # the path asked for is kept (to return to it), none of the event's data
    assert scene["kafka_id"] not in body and "order.placed" not in body and "129.5" not in body
    assert page.locator("#payload").count() == 0
    # Signing in takes the user back to the page they asked for.
    page.fill("input[name=token]", key_of(shop))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(scene["kafka_event"]["uid"]))
    assert page.locator("#payload").count() == 1

    # Signed out again: the cookie is gone and the pages are closed.
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/ui/signin"))
    page.goto(f"/ui/projects/{shop.project_id}/events")
    assert "/ui/signin" in page.url


def test_session_cookie_and_csrf(page: Any, scene: dict[str, Any], shots: Path) -> None:
    shop = scene["shop"]
    page.goto("/ui/signin")
    page.screenshot(path=str(shots / "signin.png"))
    page.fill("input[name=token]", "CO.not.a-key")
    page.click("button[type=submit]")
    assert "not accepted" in page.locator(".alert-error").inner_text()

    sign_in(page, ADMIN_TOKEN)
    assert page.url.endswith("/ui/projects")
    assert shop.project_id in page.content() and scene["hooks"].project_id in page.content()
    page.screenshot(path=str(shots / "projects.png"))
    [cookie] = [c for c in page.context.cookies() if c["name"] == "cs_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert ADMIN_TOKEN not in cookie["value"]

    # A form posted without the page's CSRF token changes nothing.
    entry = scene["hooks"].get("/requests").json()["data"]["content"][-1]
    forged = page.request.post(f"/ui/projects/{scene['hooks'].project_id}/requests/{entry['uid']}/retry",
                               form={"csrf": "forged"})
    assert forged.status == 403
    assert page.request.post("/ui/signout", form={}).status == 403
    page.goto("/ui/projects")
    assert page.url.endswith("/ui/projects")  # still signed in
