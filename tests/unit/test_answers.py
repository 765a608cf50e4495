"""Answer shapes (`answers/`): Convoy's defaults where nothing is stored, secrets hidden on reads."""

from __future__ import annotations

from typing import Any

from convoy_stream.answers.deliveries import delivery_answer
from convoy_stream.answers.endpoints import endpoint_answer
from convoy_stream.answers.events import event_answer
from convoy_stream.answers.sources import source_answer
from convoy_stream.answers.subscriptions import subscription_answer

ENDPOINT = {"uid": "e1", "project_id": "p", "name": "n", "url": "https://example.com", "secret": "s3cret",
            "owner_id": None, "description": None, "support_email": None, "slack_webhook_url": None,
            "http_timeout": None, "rate_limit": None, "rate_limit_duration": None, "status": "active",
            "created_at": "t0", "updated_at": "t1", "deleted_at": None}
SOURCE = {"uid": "s1", "project_id": "p", "name": "gh", "type": "http", "provider": "github", "mask_id": "m",
          "verifier": {"type": "hmac", "hmac": {"secret": "whsec"}}, "pub_sub": None, "created_at": "t0", "updated_at": "t0"}


class Config:
    def get(self, kind: str, uid: str) -> dict[str, Any] | None:
        return {("endpoint", "e1"): ENDPOINT, ("source", "s1"): SOURCE}.get((kind, uid))


def test_an_endpoint_has_convoys_defaults_and_its_secret_only_at_creation() -> None:
    read = endpoint_answer(ENDPOINT)
    assert (read["rate_limit"], read["rate_limit_duration"], read["http_timeout"]) == (0, 0, 10)
    assert read["slack_webhook_url"] == read["support_email"] == read["description"] == read["owner_id"] == ""
    assert read["content_type"] == "application/json" and read["failure_rate"] is None and read["cb_state"] is None
    assert read["secrets"] == [{"uid": "e1-secret", "value": "[REDACTED]", "expires_at": None, "created_at": "t0",
                                "updated_at": "t1", "deleted_at": None}]
    assert endpoint_answer(ENDPOINT, show_secret=True)["secrets"][0]["value"] == "s3cret"
    assert ENDPOINT["secret"] == "s3cret" and ENDPOINT["rate_limit"] is None  # the stored record is not changed


def test_a_source_writes_every_section_and_hides_secrets_on_reads() -> None:
    read = source_answer(SOURCE)
    assert read["verifier"] == {"type": "hmac", "hmac": {"header": "", "hash": "", "secret": "[REDACTED]", "encoding": ""},
                                "basic_auth": None, "api_key": None}
    assert read["forward_headers"] == [] and read["idempotency_keys"] == [] and read["provider_config"] is None
    assert read["custom_response"] == {"body": "", "content_type": ""} and read["body_function"] is None
    assert source_answer(SOURCE, show_secrets=True)["verifier"]["hmac"]["secret"] == "whsec"


def test_a_subscription_embeds_its_endpoint_and_source_and_writes_every_filter_scope() -> None:
    answer = subscription_answer({"uid": "sub", "endpoint_id": "e1", "source_id": "s1",
                                  "filter_config": {"event_types": ["a"], "filter": {"body": {"x": 1}}}}, Config())
    assert answer["type"] == "api" and answer["function"] is None and answer["device_metadata"] is None
    assert answer["filter_config"]["filter"] == {"is_flattened": False, "headers": {}, "body": {"x": 1}, "query": {}, "path": {}}
    assert answer["endpoint_metadata"]["secrets"][0]["value"] == "[REDACTED]"
    assert answer["source_metadata"]["verifier"]["hmac"]["secret"] == "[REDACTED]"


def test_events_and_deliveries_carry_header_maps_and_a_duplicate_says_success() -> None:
    event = event_answer({"uid": "ev", "event_type": "t", "endpoints": ["e1"], "source_id": "s1", "status": "Duplicate",
                          "is_duplicate_event": True, "headers": {"X-Tenant": ["a"]}, "created_at": "t0"}, Config())
    assert event["status"] == "Success" and event["headers"] == {"X-Tenant": ["a"]}
    assert [e["uid"] for e in event["endpoint_metadata"]] == ["e1"] and event["source_metadata"]["uid"] == "s1"
    assert event_answer({"uid": "ev", "status": "Failure", "created_at": "t0"}, Config())["failure_reason"]
    delivery = delivery_answer({"uid": "d", "endpoint_id": "e1", "headers": {"X-Tenant": "a"}, "data": {"n": 1},
                                "url": "https://example.com", "created_at": "t0", "status": "Scheduled"}, Config())
    assert delivery["headers"] == {"X-Tenant": ["a"]} and delivery["target_url"] == "https://example.com"
    assert delivery["metadata"]["data"] == {"n": 1} and delivery["metadata"]["raw"] == '{"n":1}'
    assert delivery["latency"] == "" and delivery["device_id"] == "" and delivery["acknowledged_at"] == "t0"
    assert delivery["endpoint_metadata"]["uid"] == "e1"
