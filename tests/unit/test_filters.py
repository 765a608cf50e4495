"""Subscription filters: what a subscriber gets, operator by operator."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convoy_stream.filters import (
    FilterError,
    event_type_matches,
    flatten,
    matches,
    matches_headers,
    validate_filter,
)

INVOICE = {
    "type": "invoice.paid",
    "amount": 2500,
    "currency": "NGN",
    "live": True,
    "tags": ["vip", "eu"],
    "scores": [3, 9],
    "customer": {"id": "cus_1", "email": "ada@example.com", "address": {"country": "NG"}},
    "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 5}],
    "note": None,
}


# ------------------------------------------------------------------------- event types


@pytest.mark.parametrize(
    ("types", "event_type", "expected"),
    [
        (["*"], "invoice.paid", True),
        ([], "anything", True),
        (None, "anything", True),
        (["invoice.paid"], "invoice.paid", True),
        (["invoice.paid", "invoice.failed"], "invoice.failed", True),
        (["invoice.paid"], "invoice.failed", False),
        (["invoice.paid"], "Invoice.Paid", False),
        (["invoice.*"], "invoice.paid", False),  # no glob: exact or "*" only
        (["invoice.paid", "*"], "other", True),
    ],
)
def test_event_type_matches(types, event_type, expected):
    assert event_type_matches(types, event_type) is expected


# -------------------------------------------------------------------------------- flatten


def test_flatten_nested_objects_join_keys_with_dots():
    assert flatten({"hello": {"world": {"again": "good morning"}}, "n": 1.5, "b": False, "z": None}) == {
        "hello.world.again": "good morning", "n": 1.5, "b": False, "z": None}


def test_flatten_arrays_of_objects_are_indexed_and_scalar_arrays_stay_whole():
    assert flatten({"a": [{"b": 1}, {"b": 2, "c": [1, 2]}], "tags": ["x", "y"], "e": [], "o": {}}) == {
        "a.0.b": 1, "a.1.b": 2, "a.1.c": [1, 2], "tags": ["x", "y"], "e": [], "o": {}}


def test_flatten_mixed_array_keeps_every_element():
    assert flatten({"m": [1, {"k": "v"}, [2]]}) == {"m.0": 1, "m.1.k": "v", "m.2": [2]}


@pytest.mark.parametrize("value", [None, "random_string", 5, [], {}])
def test_flatten_of_non_object_or_empty_is_empty(value):
    assert flatten(value) == {}


def test_flatten_filter_keeps_operator_objects_as_leaves():
    assert flatten({"person": {"age": {"$gte": 5}}, "name": {"$eq": "raymond"}}) == {
        "person.age": {"$gte": 5}, "name": {"$eq": "raymond"}}
    assert flatten({"person": {"age": {"$in": [10, 20]}}}) == {"person.age": {"$in": [10, 20]}}


def test_flatten_filter_flattens_inside_and_or():
    given_filter = {"$or": [{"person": {"age": {"$in": [10, 11]}}}, {"places": {"temperatures": 39.9}}]}
    assert flatten(given_filter) == {
        "$or": [{"person.age": {"$in": [10, 11]}}, {"places.temperatures": 39.9}]}


def test_flatten_treats_unknown_dollar_keys_in_payloads_as_ordinary_keys():
    assert flatten({"meta": {"$schema": "v1"}}) == {"meta.$schema": "v1"}


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_keys = st.text(alphabet=st.characters(blacklist_characters=".$"), min_size=1, max_size=5)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _walk(value, dotted):
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _leaf_count(value):
    if isinstance(value, dict):
        return sum(_leaf_count(v) for v in value.values()) if value else 1
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return sum(_leaf_count(v) for v in value)
    return 1


@given(st.dictionaries(_keys, _json, min_size=1, max_size=5))
def test_flatten_round_trips_every_leaf(payload):
    flat = flatten(payload)
    for key, leaf in flat.items():
        assert _walk(payload, key) == leaf
    assert len(flat) == _leaf_count(payload)


# --------------------------------------------------------------------- matching basics


@pytest.mark.parametrize("empty", [None, {}])
def test_empty_filter_matches_everything(empty):
    assert matches(empty, INVOICE)
    assert matches(empty, "not even an object")


def test_plain_value_means_equality():
    assert matches({"type": "invoice.paid"}, INVOICE)
    assert not matches({"type": "invoice.failed"}, INVOICE)
    assert matches({"type": "invoice.paid", "currency": "NGN"}, INVOICE)
    assert not matches({"type": "invoice.paid", "currency": "USD"}, INVOICE)


def test_nested_dotted_and_flattened_filters_are_the_same_filter():
    for f in ({"customer": {"address": {"country": "NG"}}},
              {"customer.address.country": "NG"},
              {"customer": {"address.country": "NG"}},
              flatten({"customer": {"address": {"country": {"$eq": "NG"}}}})):
        assert matches(f, INVOICE), f
    assert not matches({"customer.address.country": "GB"}, INVOICE)


def test_missing_field_fails_positive_conditions():
    # Convoy's regression test "missing required field"
    assert not matches({"type": "invoice", "customer": "alice"}, {"type": "invoice"})
    assert not matches({"nope": {"$gt": 1}}, INVOICE)
    assert not matches({"nope": {"$in": [1]}}, INVOICE)
    assert not matches({"nope": {"$regex": "."}}, INVOICE)


def test_empty_object_value_means_equals_empty_object():
    assert not matches({"type": "invoice", "customer": {}}, {"type": "invoice"})
    assert matches({"meta": {}}, {"meta": {}})


def test_array_index_and_positional_wildcard():
    assert matches({"items.1.sku": "B2"}, INVOICE)
    assert not matches({"items.0.sku": "B2"}, INVOICE)
    assert matches({"items.$.sku": "B2"}, INVOICE)
    assert matches({"items.$.qty": {"$gte": 5}}, INVOICE)
    assert not matches({"items.$.qty": {"$gt": 5}}, INVOICE)
    assert not matches({"items.7.sku": "A1"}, INVOICE)
    assert not matches({"items.01.sku": "B2"}, INVOICE)


def test_payload_keys_containing_dots_are_reachable():
    assert matches({"a.b": 1}, {"a.b": 1})
    assert matches({"a": {"b": 1}}, {"a.b": 1})


def test_numbers_compare_numerically_but_never_match_bools_or_strings():
    assert matches({"amount": 2500.0}, INVOICE)
    assert not matches({"amount": "2500"}, INVOICE)
    assert matches({"live": True}, INVOICE)
    assert not matches({"live": 1}, INVOICE)
    assert not matches({"flag": True}, {"flag": 1})


# ------------------------------------------------------------------------------ operators


def test_eq_and_neq():
    assert matches({"currency": {"$eq": "NGN"}}, INVOICE)
    assert not matches({"currency": {"$neq": "NGN"}}, INVOICE)
    assert matches({"currency": {"$neq": "USD"}}, INVOICE)
    assert matches({"note": {"$eq": None}}, INVOICE)
    assert matches({"missing": {"$neq": "x"}}, INVOICE)  # absent is "not equal"


def test_eq_against_array_field_is_array_contains_or_whole_equality():
    assert matches({"tags": "vip"}, INVOICE)
    assert matches({"tags": {"$eq": "eu"}}, INVOICE)
    assert matches({"tags": ["vip", "eu"]}, INVOICE)
    assert not matches({"tags": ["eu", "vip"]}, INVOICE)
    assert not matches({"tags": "us"}, INVOICE)
    assert not matches({"tags": {"$neq": "vip"}}, INVOICE)
    assert matches({"tags": {"$neq": "us"}}, INVOICE)


@pytest.mark.parametrize(
    ("op", "operand", "expected"),
    [("$gt", 2499, True), ("$gt", 2500, False), ("$gte", 2500, True), ("$gte", 2500.5, False),
     ("$lt", 2501, True), ("$lt", 2500, False), ("$lte", 2500, True), ("$lte", 2499.99, False)],
)
def test_ordering_operators(op, operand, expected):
    assert matches({"amount": {op: operand}}, INVOICE) is expected


def test_ordering_range_and_non_numbers():
    assert matches({"amount": {"$gte": 1000, "$lt": 5000}}, INVOICE)
    assert not matches({"amount": {"$gte": 1000, "$lt": 2000}}, INVOICE)
    assert not matches({"currency": {"$lt": 10}}, INVOICE)  # "nonnumeric less than"
    assert not matches({"live": {"$gte": 0}}, INVOICE)
    assert matches({"scores": {"$gt": 8}}, INVOICE)  # any element
    assert not matches({"scores": {"$gt": 9}}, INVOICE)


def test_in_and_nin():
    assert matches({"currency": {"$in": ["USD", "NGN"]}}, INVOICE)
    assert not matches({"currency": {"$in": ["USD", "EUR"]}}, INVOICE)
    assert matches({"currency": {"$nin": ["USD", "EUR"]}}, INVOICE)
    assert not matches({"currency": {"$nin": ["NGN"]}}, INVOICE)
    assert matches({"amount": {"$in": [2500.0]}}, INVOICE)
    assert matches({"missing": {"$nin": ["x"]}}, INVOICE)


def test_in_and_nin_against_array_field():
    assert matches({"tags": {"$in": ["us", "eu"]}}, INVOICE)
    assert not matches({"tags": {"$in": ["us", "ca"]}}, INVOICE)
    assert not matches({"tags": {"$nin": ["us", "eu"]}}, INVOICE)
    assert matches({"tags": {"$nin": ["us", "ca"]}}, INVOICE)


def test_exist():
    assert matches({"customer.email": {"$exist": True}}, INVOICE)
    assert not matches({"customer.phone": {"$exist": True}}, INVOICE)
    assert matches({"customer.phone": {"$exist": False}}, INVOICE)
    assert not matches({"customer.email": {"$exist": False}}, INVOICE)
    assert matches({"note": {"$exist": True}}, INVOICE)  # null is present
    assert matches({"items": {"$exist": True}}, INVOICE)  # an array of objects exists
    # Convoy's regression test "exists false plus comparison"
    assert not matches({"customer": {"$exist": False, "$eq": "alice"}}, {"type": "invoice"})


def test_regex():
    assert matches({"type": {"$regex": "^invoice\\."}}, INVOICE)
    assert matches({"customer.email": {"$regex": "@example\\.com$"}}, INVOICE)
    assert matches({"type": {"$regex": "paid"}}, INVOICE)  # unanchored search
    assert not matches({"type": {"$regex": "^paid"}}, INVOICE)
    assert not matches({"amount": {"$regex": "25"}}, INVOICE)  # numbers are not strings
    assert matches({"tags": {"$regex": "^v"}}, INVOICE)


def test_or():
    f = {"$or": [{"currency": "USD"}, {"amount": {"$gt": 1000}}]}
    assert matches(f, INVOICE)
    assert not matches({"$or": [{"currency": "USD"}, {"amount": {"$gt": 9000}}]}, INVOICE)
    # Convoy's regression tests "missing within or" / "valid or branch"
    assert not matches({"$or": [{"type": "invoice", "customer": "alice"}, {"type": "payment"}]},
                       {"type": "invoice"})
    assert matches({"$or": [{"customer": "alice"}, {"type": "invoice"}]}, {"type": "invoice"})


def test_and_and_nesting():
    assert matches({"$and": [{"currency": "NGN"}, {"amount": {"$gte": 2500}}]}, INVOICE)
    assert not matches({"$and": [{"currency": "NGN"}, {"amount": {"$gt": 2500}}]}, INVOICE)
    nested = {"$and": [{"live": True}, {"$or": [{"tags": "gold"}, {"customer.id": "cus_1"}]}]}
    assert matches(nested, INVOICE)


def test_and_or_under_a_field_are_relative_to_it():
    assert matches({"customer": {"$or": [{"id": "cus_9"}, {"address.country": "NG"}]}}, INVOICE)
    assert not matches({"customer": {"$and": [{"id": "cus_1"}, {"address.country": "GB"}]}}, INVOICE)


def test_top_level_and_is_combined_with_sibling_fields():
    f = {"type": "invoice.paid", "$or": [{"currency": "USD"}, {"currency": "NGN"}]}
    assert matches(f, INVOICE)
    assert not matches({**f, "type": "x"}, INVOICE)


# ----------------------------------------------------------------------- malformed filters


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"amount": {"$between": [1, 2]}}, "unknown operator $between"),
        ({"$venues": "bariga"}, "unknown operator $venues"),
        ({"$or": {"a": 1}}, "the value of $or and $and must be an array"),
        ({"$and": []}, "the value of $or and $and must be an array"),
        ({"$and": [1]}, "every element of $and must be an object"),
        ({"a": {"$in": "x"}}, "the value of $in must be an array"),
        ({"a": {"$nin": 5}}, "the value of $nin must be an array"),
        ({"amount": {"$lt": "invalid"}}, "the value of $lt must be a number"),
        ({"amount": {"$gte": True}}, "the value of $gte must be a number"),
        ({"customer": {"$exist": "yes"}}, "the value of $exist must be a boolean"),
        ({"a": {"$regex": 5}}, "the value of $regex must be a string"),
        ({"tags.$": "x"}, "invalid filter syntax, found trailing $"),
        ({"tags.$": {"$eq": "x"}}, "invalid filter syntax, found trailing $"),
        ({"$eq": 5}, "operator $eq must be applied to a field"),
    ],
)
def test_validate_filter_rejects_bad_shapes_with_clear_messages(bad, message):
    with pytest.raises(FilterError) as info:
        validate_filter(bad)
    assert info.value.message == message
    with pytest.raises(FilterError):
        matches(bad, INVOICE)


def test_validate_filter_rejects_bad_regex_and_bad_keys_and_non_objects():
    with pytest.raises(FilterError, match="invalid regular expression"):
        validate_filter({"a": {"$regex": "("}})
    with pytest.raises(FilterError, match="empty path segment"):
        validate_filter({"a..b": 1})
    with pytest.raises(FilterError, match="must be a JSON object"):
        validate_filter(["a"])  # type: ignore[arg-type]


def test_validate_filter_accepts_real_filters():
    for good in (None, {}, {"type": "x"}, {"a": {"$in": [1, 2], "$nin": [3]}},
                 {"$or": [{"a": 1}, {"b": {"$exist": False}}]}, {"items.$.id": {"$regex": "^x"}},
                 {"a": {"$gte": 1.5, "$lte": 2}}, {"$.venues.$.lagos": "lekki"}):
        validate_filter(good)


# ---------------------------------------------------------------------------- header filters


def test_header_filters_ignore_name_case_and_see_multi_values():
    headers = {"x-github-event": "push", "x-tags": ["a", "b"]}
    assert matches_headers({"X-GitHub-Event": "push"}, headers)
    assert matches_headers({"$or": [{"X-GITHUB-EVENT": "pull"}, {"X-Tags": "b"}]}, headers)
    assert not matches_headers({"X-GitHub-Event": "pull_request"}, headers)
    assert matches_headers({}, headers)
    assert matches_headers({"X-Other": {"$exist": False}}, {"X-Github-Event": "push"})


@given(_json, st.dictionaries(_keys, _json, max_size=3))
def test_matching_is_total_for_valid_filters(payload, filter_doc):
    # any JSON filter made of plain values either matches or not; it never crashes
    assert matches(filter_doc, payload) in (True, False)
    assert matches(json.loads(json.dumps(filter_doc)), payload) == matches(filter_doc, payload)
