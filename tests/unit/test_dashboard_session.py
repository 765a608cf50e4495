"""Dashboard sessions and rendering: what a cookie proves, when it stops proving it, CSRF,
escaping, and the chart's geometry."""

from __future__ import annotations

import hashlib

import pytest

from convoy_stream.ids import new_api_key
from convoy_stream.ui import session as sessions
from convoy_stream.ui.chart import Chart, merge_counts
from convoy_stream.ui.render import CSP, ENV
from tables.config import ConfigStore

ADMIN = "admin-token-for-tests"
ADMIN_DIGEST = hashlib.sha256(ADMIN.encode()).hexdigest()


@pytest.fixture
def config() -> ConfigStore:
    store = ConfigStore("127.0.0.1:1", "unused")
    store._apply("cluster/internal", {"uid": "internal", "internal_secret": "s3cret"}, 0)
    return store


def add_key(config: ConfigStore, project: str, offset: int) -> str:
    key, mask, digest = new_api_key()
    config._apply(f"apikey/{mask}", {"uid": mask, "project_id": project, "digest": digest}, offset)
    return key


def test_a_project_key_signs_in_to_its_project_only(config: ConfigStore) -> None:
    key = add_key(config, "P1", 1)
    session, cookie = sessions.sign_in(config, ADMIN_DIGEST, key)
    assert not session.admin and session.may_see("P1") and not session.may_see("P2")
    assert key.split(".")[2] not in cookie  # the cookie never holds the credential
    assert sessions.check(config, ADMIN_DIGEST, cookie) == session


def test_the_admin_token_sees_every_project(config: ConfigStore) -> None:
    session, cookie = sessions.sign_in(config, ADMIN_DIGEST, ADMIN)
    assert session.admin and session.may_see("anything") and ADMIN not in cookie
    # Another admin token (the instance's was changed) ends the session.
    assert sessions.check(config, hashlib.sha256(b"new").hexdigest(), cookie) is None


@pytest.mark.parametrize("token", ["", "CO.nope.nope", "CO.a.b.c", "admin", "Bearer x"])
def test_anything_else_is_refused(config: ConfigStore, token: str) -> None:
    assert sessions.sign_in(config, ADMIN_DIGEST, token) is None


def test_a_tampered_expired_or_revoked_cookie_proves_nothing(config: ConfigStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key = add_key(config, "P1", 1)
    _, cookie = sessions.sign_in(config, ADMIN_DIGEST, key)
    payload, signature = cookie.rsplit(".", 1)
    forged = sessions._b64(sessions._unb64(payload).replace(b'"P1"', b'"P2"'))
    assert sessions.check(config, ADMIN_DIGEST, f"{forged}.{signature}") is None
    assert sessions.check(config, ADMIN_DIGEST, "garbage") is None and sessions.check(config, ADMIN_DIGEST, None) is None
    monkeypatch.setattr(sessions.clock, "seconds", lambda: 10**12)
    assert sessions.check(config, ADMIN_DIGEST, cookie) is None
    monkeypatch.undo()
    config._apply(f"apikey/{key.split('.')[1]}", None, 2)  # the key is deleted
    assert sessions.check(config, ADMIN_DIGEST, cookie) is None


def test_csrf_tokens_are_bound_to_the_session(config: ConfigStore) -> None:
    key = add_key(config, "P1", 1)
    one, _ = sessions.sign_in(config, ADMIN_DIGEST, key)
    two, _ = sessions.sign_in(config, ADMIN_DIGEST, key)
    assert sessions.csrf_ok(config, one, sessions.csrf_token(config, one))
    assert not sessions.csrf_ok(config, one, sessions.csrf_token(config, two))
    assert not sessions.csrf_ok(config, one, "")


def test_cookie_options() -> None:
    plain = sessions.cookie_options("http://127.0.0.1:5005", 60)
    assert plain["httponly"] and plain["samesite"] == "Strict" and plain["path"] == "/ui" and not plain["secure"]
    assert sessions.cookie_options("https://hooks.example.com", 60)["secure"]


def test_templates_escape_every_value() -> None:
    html = ENV.from_string("<td>{{ v }}</td><a href='/x/{{ v }}'>").render(v="<script>alert(1)</script>' onerror='x")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&#39; onerror=" in html
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP


def test_chart_counts_from_every_worker_are_summed_into_hourly_bars() -> None:
    hour = 3_600_000
    merged = merge_counts([
        {"buckets": {str(hour): {"accepted": 3}}, "by_source": {"S": {str(hour): {"accepted": 3}}}, "capped": False},
        {"buckets": {str(hour): {"duplicate": 1}, str(2 * hour): {"rejected": 2}}, "by_source": {}, "capped": True},
        {"buckets": {str(99 * hour): {"accepted": 5}}, "by_source": {}},  # outside the window
    ], start_ms=hour, buckets=2, bucket_ms=hour)
    assert merged["capped"] and [b["accepted"] for b in merged["total"]] == [3, 0]
    chart = Chart.of(merged["total"])
    assert chart.totals == {"accepted": 3, "duplicate": 1, "rejected": 2} and chart.peak == 4
    kinds = [[kind for kind, *_ in bar.segments] for bar in chart.bars]
    assert kinds == [["accepted", "duplicate"], ["rejected"]]
    assert all(0 <= y <= chart.height for bar in chart.bars for _, y, _, _ in bar.segments)
