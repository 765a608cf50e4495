"""Webhook ingest parsing: stored body, event type, idempotency key, headers."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convoy_stream.webhook_payload import (
    INVALID_REQUEST_FORMAT,
    REDACTED,
    LocationError,
    PayloadError,
    convert_body,
    extract_event_type,
    forwarded_headers,
    idempotency_key,
    redact_headers,
    validate_event_type_location,
    validate_idempotency_locations,
)

FORM = "application/x-www-form-urlencoded"


def multipart(boundary: str, *parts: bytes, close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def field(name: str, value: bytes, extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="' + name.encode() + b'"' + extra + b"\r\n\r\n" + value


# ---------------------------------------------------------------------------- convert_body


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", None, "", "text/plain", "application/xml",
    "text/html", "APPLICATION/JSON",
])
def test_non_form_bodies_are_stored_unchanged(content_type):
    for body in (b'{ "name": "convoy" }', b"<xml>not json</xml>", b"plain text"):
        assert convert_body(content_type, body) == body


@pytest.mark.parametrize("content_type", [None, "application/json", FORM, "multipart/form-data; boundary=x"])
def test_empty_body_becomes_empty_object(content_type):
    assert convert_body(content_type, b"") == b"{}"


def test_urlencoded_body_becomes_sorted_json_object():
    # Convoy's api/ingest_test.go vector
    assert convert_body(FORM, b"key1=value1&key2=value2") == b'{"key1":"value1","key2":"value2"}'
    assert convert_body(FORM, b"b=2&a=1") == b'{"a":"1","b":"2"}'


def test_urlencoded_takes_first_value_decodes_escapes_and_keeps_blanks():
    body = b"name=Ada+Lovelace&name=second&city=Lagos%2C+NG&empty=&flag&emoji=%F0%9F%9A%80"
    assert json.loads(convert_body(FORM + "; charset=UTF-8", body)) == {
        "name": "Ada Lovelace", "city": "Lagos, NG", "empty": "", "flag": "", "emoji": "\U0001F680"}


def test_urlencoded_output_is_go_json_bytes():
    # Go's json.Marshal escapes <, > and & - the converted bytes match Convoy's exactly
    assert convert_body(FORM, b"q=%3Ca%3E+%26+b") == b'{"q":"\\u003ca\\u003e \\u0026 b"}'


@pytest.mark.parametrize("body", [b"a=%zz", b"a=%4", b"a=%ff%fe", b"a=\xff"])
def test_undecodable_urlencoded_body_is_invalid_request_format(body):
    with pytest.raises(PayloadError) as info:
        convert_body(FORM, body)
    assert info.value.message == INVALID_REQUEST_FORMAT == "Invalid request format"


def test_form_conversion_never_includes_query_parameters():
    # docs/decisions.md#decision-11: convert_body sees only the body; there is no way for query params in
    converted = json.loads(convert_body(FORM, b"body_field=1"))
    assert converted == {"body_field": "1"}


def test_multipart_keeps_text_fields_and_drops_files():
    body = multipart(
        "XyZ",
        field("event", b"inbound"),
        field("attachment", b"\x00\x01binary", b'; filename="a.bin"\r\nContent-Type: application/octet-stream'),
        field("text", b"line1\r\nline2"),
        field("event", b"second value ignored"),
    )
    converted = convert_body("multipart/form-data; boundary=XyZ", body)
    assert converted == b'{"event":"inbound","text":"line1\\r\\nline2"}'


def test_multipart_boundary_is_case_sensitive_and_may_be_quoted():
    body = multipart("AbC'()+_,-./:=?", field("k", b"v"))
    assert convert_body("Multipart/Form-Data; boundary=\"AbC'()+_,-./:=?\"", body) == b'{"k":"v"}'


def test_multipart_decodes_transfer_encodings_and_utf8():
    body = multipart(
        "b",
        field("b64", b"aGVsbG8=", b"\r\nContent-Transfer-Encoding: base64"),
        field("name", "Zoë".encode()),
    )
    assert json.loads(convert_body("multipart/form-data; boundary=b", body)) == {"b64": "hello", "name": "Zoë"}


def test_multipart_without_fields_is_empty_object():
    assert convert_body("multipart/form-data; boundary=b", b"--b--\r\n") == b"{}"


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", multipart("b", field("k", b"v"))),  # no boundary parameter
    ("multipart/form-data; boundary=other", multipart("b", field("k", b"v"))),
    ("multipart/form-data; boundary=b", multipart("b", field("k", b"v"), close=False)),
    ("multipart/form-data; boundary=b", b"just some text"),
    ("multipart/form-data; boundary=b", multipart("b", field("k", b"\xff\xfe"))),
])
def test_malformed_multipart_is_invalid_request_format(content_type, body):
    with pytest.raises(PayloadError, match="^Invalid request format$"):
        convert_body(content_type, body)


_content_types = st.one_of(
    st.none(), st.text(max_size=40),
    st.sampled_from([FORM, "multipart/form-data", "application/json"]),
    st.builds(lambda b: f"multipart/form-data; boundary={b}", st.text(max_size=20)),
)


@given(_content_types, st.binary(max_size=300))
def test_convert_body_only_ever_raises_payload_error(content_type, body):
    try:
        out = convert_body(content_type, body)
    except PayloadError:
        return
    assert isinstance(out, bytes) and out


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=6))
def test_urlencoded_round_trip(fields):
    from urllib.parse import urlencode

    out = convert_body(FORM, urlencode(fields).encode())
    assert json.loads(out) == fields
    assert list(json.loads(out)) == sorted(fields)


@given(st.dictionaries(st.text(alphabet="abcdefghij_-", min_size=1, max_size=8),
                       st.text(max_size=12).filter(lambda s: "\r" not in s), max_size=5))
def test_multipart_round_trip(fields):
    body = multipart("=_b0und", *(field(k, v.encode()) for k, v in fields.items()))
    if not fields:
        body = b"--=_b0und--\r\n"
    assert json.loads(convert_body('multipart/form-data; boundary="=_b0und"', body)) == fields


# ------------------------------------------------------------------------ event type (9.4)

GITLAB = b'{"object_kind":"push","project":{"path_with_namespace":"acme/backend"},"user_id":38562979,"confirmed":true}'


@pytest.mark.parametrize(("location", "expected"), [
    ("request.body.object_kind", "push"),
    ("request.body.project.path_with_namespace", "acme/backend"),
    ("request.body.user_id", "38562979"),
    ("request.body.confirmed", "true"),
])
def test_event_type_from_body(location, expected):
    assert extract_event_type(location, headers={}, query={}, body=GITLAB) == expected


def test_event_type_from_header_is_case_insensitive():
    headers = {"x-gitlab-event": "Push Hook"}
    assert extract_event_type("request.header.X-Gitlab-Event", headers=headers, query={}, body=b"{}") == "Push Hook"


def test_event_type_from_query_string_or_mapping():
    assert extract_event_type("request.query.event_type", headers={}, query="event_type=push", body=b"{}") == "push"
    assert extract_event_type("req.QueryParam.event_type", headers={},
                              query={"event_type": ["merge_request", "x"]}, body=b"{}") == "merge_request"
    assert extract_event_type("request.queryparam.e", headers={}, query="?e=a&e=b", body=b"{}") == "a"


def test_event_type_is_trimmed_and_numbers_keep_their_text():
    assert extract_event_type("request.body.t", headers={}, query={}, body=b'{"t":"  paid  "}') == "paid"
    assert extract_event_type("request.body.t", headers={}, query={}, body=b'{"t":1.50}') == "1.50"
    assert extract_event_type("request.body.t", headers={}, query={}, body=b'{"t":false}') == "false"


def test_event_type_from_converted_form_body():
    body = convert_body(FORM, b"type=charge.succeeded")
    assert extract_event_type("request.body.type", headers={}, query={}, body=body) == "charge.succeeded"


@pytest.mark.parametrize(("location", "kwargs", "message"), [
    ("request.body.event_name", {}, "event type not found in request body at event_name"),
    ("request.body.project.missing", {}, "event type not found in request body at project.missing"),
    ("request.body.object_kind.deeper", {}, "event type not found in request body at object_kind.deeper"),
    ("request.header.X-Empty", {"headers": {"X-Empty": "   "}},
     "event type not found in request at request.header.X-Empty"),
    ("request.header.X-Missing", {}, "event type not found in request at request.header.X-Missing"),
    ("request.query.event_type", {"query": "other=1"}, "event type not found in request at request.query.event_type"),
    ("request.body.project", {}, "event type at request.body.project must be a scalar value"),
])
def test_event_type_not_found_errors(location, kwargs, message):
    args = {"headers": {}, "query": {}, "body": GITLAB, **kwargs}
    with pytest.raises(PayloadError) as info:
        extract_event_type(location, **args)
    assert info.value.message == message
    assert not isinstance(info.value, LocationError)


def test_event_type_body_must_be_json():
    with pytest.raises(PayloadError, match="^failed to read event type from request body: "):
        extract_event_type("request.body.type", headers={}, query={}, body=b"type=x")


@pytest.mark.parametrize("location", [
    "request.header.X.Event.Type", "request.query.event.type", "payload.body.object_kind",
    "request.body", "request.cookie.x", "request.body.", "request.body.a..b", " request.body.a",
    "request. body.a", "",
])
def test_bad_event_type_locations_are_location_errors(location):
    with pytest.raises(LocationError):
        extract_event_type(location, headers={"X": "a"}, query="event=a", body=GITLAB)


def test_nested_selector_message_names_the_problem():
    with pytest.raises(LocationError, match="^nested selector unsupported"):
        validate_event_type_location("request.header.X.Event.Type", payload_signature=False)


def test_event_type_location_payload_signature_restriction():
    message = "event type location cannot use request headers or query parameters with payload signature verification"
    for location in ("request.header.X-GitHub-Event", "request.query.event", "req.QueryParam.e"):
        validate_event_type_location(location, payload_signature=False)
        with pytest.raises(LocationError) as info:
            validate_event_type_location(location, payload_signature=True)
        assert info.value.message == message
    validate_event_type_location("request.body.type", payload_signature=True)
    validate_event_type_location("", payload_signature=True)  # not configured


# ----------------------------------------------------------------------- idempotency (9.6)


def _expected(source_id: str, *values: str | None) -> str:
    data = b""
    for item in (source_id, *values):
        if item is None:
            data += b"~"
        else:
            raw = item.encode()
            data += str(len(raw)).encode() + b":" + raw + b","
    return hashlib.sha256(data).hexdigest()


def _key(locations, *, source_id="src_01", headers=None, query="", body=b"{}", content_type="application/json"):
    return idempotency_key(source_id, locations, headers=headers or {}, query=query, body=body,
                           content_type=content_type)


def test_body_value_key_is_sha256_over_source_id_and_length_prefixed_values():
    key = _key(["request.body.id"], body=b'{"id":"evt_123"}')
    assert key == _expected("src_01", "evt_123")
    assert key == hashlib.sha256(b"6:src_01,7:evt_123,").hexdigest()
    assert len(key) == 64 and key == key.lower()
    # deliberately not Convoy's old checksum sha256(name + values) (spec 9.6)
    assert key != "c6164fb70c638b0ab1e0b346951ce39db64f62cd16c2e879207d4c5026d73371"


def test_absent_value_means_no_key_instead_of_a_shared_one():
    # Convoy: sha256("stripe-prod") = be235d68..., so every such request was a duplicate
    assert _key(["request.header.X-Stripe-Id"]) is None
    assert _key(["request.header.X-Id"], headers={"X-Id": ""}) is None
    assert _key(["request.query.id"], query="other=1") is None
    assert _key(["request.body.id"], body=b'{"other":1}') is None
    assert _key(["request.body.id"], body=b'{"id":null}') is None
    assert _key([]) is None


def test_key_depends_on_source_id_not_name_so_renames_keep_dedup():
    body = b'{"id":"evt_123"}'
    # the name is not an input at all: same id, same key, whatever the source is called
    assert _key(["request.body.id"], source_id="src_A", body=body) == _key(["request.body.id"], source_id="src_A",
                                                                         body=body)
    assert _key(["request.body.id"], source_id="src_A", body=body) != _key(["request.body.id"], source_id="src_B",
                                                                         body=body)


def test_separator_makes_values_unambiguous():
    locs = ["request.header.A", "request.header.B"]
    assert _key(locs, headers={"A": "ab", "B": "c"}) != _key(locs, headers={"A": "a", "B": "bc"})
    # a missing first value is not the same as a missing second value
    assert _key(locs, headers={"A": "x"}) != _key(locs, headers={"B": "x"})
    assert _key(locs, headers={"A": "x"}) == _expected("src_01", "x", None)


def test_header_query_and_body_locations():
    headers = {"X-GitHub-Delivery": "72d3162e"}
    assert _key(["request.header.x-github-delivery"], headers=headers) == _expected("src_01", "72d3162e")
    assert _key(["req.QueryParam.id"], query="id=q1&id=q2") == _expected("src_01", "q1")
    assert _key(["request.query.id"], query={"id": ["q1"]}) == _expected("src_01", "q1")
    body = b'{"data":{"items":[{"id":7},{"id":8.50}],"ok":true,"obj":{"b":1,"a":[1,2]}}}'
    assert _key(["request.body.data.items.1.id"], body=body) == _expected("src_01", "8.50")
    assert _key(["request.Body.data.ok"], body=body) == _expected("src_01", "true")
    assert _key(["request.body.data.obj"], body=body) == _expected("src_01", '{"a":[1,2],"b":1}')
    assert _key(["request.body.data.items.9.id"], body=body) is None
    # Adyen-style composite key, in location order
    assert _key(["request.body.data.items.0.id", "request.header.X-GitHub-Delivery"], headers=headers,
                body=body) == _expected("src_01", "7", "72d3162e")


def test_body_locations_on_form_bodies_read_form_fields():
    form = b"MessageSid=SM123&a.b=dotted"
    assert _key(["request.body.MessageSid"], body=form, content_type=FORM) == _expected("src_01", "SM123")
    assert _key(["request.body.a.b"], body=form, content_type=FORM) == _expected("src_01", "dotted")
    mp = multipart("b", field("id", b"m1"))
    assert _key(["request.body.id"], body=mp, content_type="multipart/form-data; boundary=b") == _expected(
        "src_01", "m1")
    assert _key(["request.body.id"], body=b"a=%zz", content_type=FORM) is None


def test_body_locations_on_json_with_sloppy_content_type_and_non_json():
    assert _key(["request.body.id"], body=b'{"id":"x"}', content_type=None) == _expected("src_01", "x")
    assert _key(["request.body.id"], body=b"<xml/>", content_type="application/xml") is None


@pytest.mark.parametrize(("locations", "message"), [
    (["request.header"], "not enough parts set for idempotency key location with value: request.header"),
    (["request.body."], "not enough parts set for idempotency key location with value: request.body."),
    (["payload.body.id"], "unsupported input format for idempotency key location with value: payload.body.id"),
    (["request.cookie.id"], "unsupported input format for idempotency key location with value: request.cookie.id"),
    (["request.HEADER.id"], "unsupported input format for idempotency key location with value: request.HEADER.id"),
])
def test_idempotency_location_validation_messages(locations, message):
    with pytest.raises(LocationError) as info:
        validate_idempotency_locations(locations)
    assert info.value.message == message
    with pytest.raises(LocationError):
        _key(locations)


def test_valid_idempotency_locations():
    validate_idempotency_locations(None)
    validate_idempotency_locations([])
    validate_idempotency_locations(["request.header.X-Id", "req.Header.x", "request.Body.a.b", "request.query.q",
                                    "req.QueryParam.q", "request.body.items.0.id"])
    with pytest.raises(LocationError):
        validate_idempotency_locations("request.body.id")  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["request.header.A", "request.query.q", "request.body.id"]), min_size=1,
                max_size=3),
       st.dictionaries(st.sampled_from(["A", "a", "B"]), st.text(max_size=5), max_size=2),
       st.text(max_size=20), st.binary(max_size=40))
def test_idempotency_key_is_none_or_hex_digest(locations, headers, query, body):
    key = idempotency_key("src", locations, headers=headers, query=query, body=body, content_type=None)
    assert key is None or (len(key) == 64 and int(key, 16) >= 0)


# -------------------------------------------------------------------------------- headers


def test_redact_headers_keeps_convoys_canonical_names_and_hides_credentials():
    stored = redact_headers(
        {"authorization": "Bearer s3cret", "Cookie": "session=1", "Proxy-Authorization": "Basic x",
         "X-Api-Key": "key", "X-GitHub-Event": "push", "content-type": "application/json", "X Odd": "1"},
        extra=["x-API-key"],
    )
    assert stored == {  # Go's net/http spelling, which Convoy stores; a non-token name as sent
        "Authorization": REDACTED, "Cookie": REDACTED, "Proxy-Authorization": REDACTED,
        "X-Api-Key": REDACTED, "X-Github-Event": "push", "Content-Type": "application/json", "X Odd": "1",
    }
    assert REDACTED == "[REDACTED]"


def test_forwarded_headers_all_non_redacted_by_default():
    stored = redact_headers({"Authorization": "x", "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=ab"})
    assert forwarded_headers(stored, None) == {"X-Github-Event": "push", "X-Hub-Signature-256": "sha256=ab"}
    assert forwarded_headers(stored, []) == forwarded_headers(stored, None)


def test_forwarded_headers_only_listed_ones_when_configured():
    stored = redact_headers({"Authorization": "x", "X-GitHub-Event": "push", "X-Other": "1"})
    assert forwarded_headers(stored, ["x-github-event", "Authorization"]) == {"X-Github-Event": "push"}
