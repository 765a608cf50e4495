"""The OpenAPI 3 description of convoy-stream's HTTP API, served at `GET /openapi.json`.

The request schemas are generated from the field tables the validators read
(`convoy_stream.shapes`), so the document and the validators cannot disagree about a
field's type, enum or bounds; the rest is kept as Python next to the routes.
`tests/unit/test_openapi.py` checks that every route registered in `routes.py` (except the workers' own `/_internal/*`) has exactly one operation
here, and `tests/integration/test_openapi_fuzz.py` runs schemathesis against a
live worker with it: no 5xx, and every answer matches this document.

Every JSON answer is Convoy's envelope `{"status", "message", "data"}`; errors
carry no `data`. Lists are `data: {"content": [...], "pagination": {...}}`.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from aiohttp import web

from ..shapes.catalog import request_schemas

VERSION = "0.1.0"

Schema = dict[str, Any]

# -- schema helpers -------------------------------------------------------------------------

STRING: Schema = {"type": "string"}
NULLABLE_STRING: Schema = {"type": "string", "nullable": True}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
NULLABLE_INTEGER: Schema = {"type": "integer", "nullable": True}
NULLABLE_NUMBER: Schema = {"type": "number", "nullable": True}
ANY: Schema = {}
STRING_LIST: Schema = {"type": "array", "items": STRING}
STRING_MAP: Schema = {"type": "object", "additionalProperties": STRING}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null (OpenAPI 3.0's `nullable` does not apply to a bare `$ref`)."""
    return {"anyOf": [schema, {"enum": [None]}]}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def envelope(data: Schema) -> Schema:
    return obj({"status": {"type": "boolean", "enum": [True]}, "message": STRING, "data": data},
               ["status", "message", "data"])


def listing(item: str) -> Schema:
    return obj({"content": {"type": "array", "items": ref(item)}, "pagination": ref("Pagination")},
               ["content", "pagination"])


# -- components -----------------------------------------------------------------------------

DATA_OMITTED: Schema = {"type": "string", "description": "present when `data` is null because it was stored nested "
                                                         "deeper than the 128 levels an answer can carry"}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"status": {"type": "boolean", "enum": [False]}, "message": STRING}, ["status", "message"],
                 description="Every error answer (4xx, 503)."),
    "Pagination": obj({"per_page": INTEGER, "has_next_page": BOOLEAN, "has_prev_page": BOOLEAN,
                       "next_page_cursor": STRING, "prev_page_cursor": STRING},
                      ["per_page", "has_next_page", "has_prev_page", "next_page_cursor", "prev_page_cursor"]),
    "Health": obj({"config_loaded": BOOLEAN, "kafka_connected": BOOLEAN, "partitions_assigned": BOOLEAN},
                  ["config_loaded", "kafka_connected", "partitions_assigned"]),
    # -- requests: generated from the field tables the validators read --
    **request_schemas(),
    # -- answers --
    # Convoy's answers (`answers/`): `required` lists what Convoy's models always write.
    "Project": obj({"uid": STRING, "name": STRING, "type": {"type": "string", "enum": ["incoming", "outgoing"]},
                    "logo_url": STRING, "organisation_id": STRING, "config": ref("ProjectConfig"),
                    "statistics": {"type": "object", "nullable": True}, "retained_events": INTEGER,
                    "created_at": STRING, "updated_at": STRING, "deleted_at": NULLABLE_STRING},
                   ["uid", "name", "logo_url", "organisation_id", "type", "config", "statistics", "retained_events",
                    "created_at", "updated_at", "deleted_at"]),
    "ProjectConfig": obj({
        "max_payload_read_size": INTEGER, "replay_attacks_prevention_enabled": BOOLEAN,
        "add_event_id_trace_headers": BOOLEAN, "disable_endpoint": BOOLEAN, "multiple_endpoint_subscriptions": BOOLEAN,
        "verify_dynamic_events": BOOLEAN, "allow_unmatched_dynamic_urls": BOOLEAN, "search_policy": STRING,
        "ssl": obj({"enforce_secure_endpoints": BOOLEAN}, ["enforce_secure_endpoints"]),
        "ratelimit": obj({"count": INTEGER, "duration": INTEGER}, ["count", "duration"]),
        "strategy": obj({"type": STRING, "duration": INTEGER, "retry_count": INTEGER}, ["type", "duration", "retry_count"]),
        "signature": obj({"header": STRING, "versions": {"type": "array", "items": obj(
            {"uid": STRING, "hash": STRING, "encoding": STRING, "created_at": STRING}, ["uid", "encoding", "created_at"])}},
            ["versions"]),
        "request_id_header": STRING,
        "meta_event": obj({"is_enabled": BOOLEAN, "type": STRING, "event_type": STRING_LIST, "url": STRING,
                           "secret": STRING, "pub_sub": {"type": "object", "nullable": True}},
                          ["is_enabled", "type", "event_type", "url", "secret", "pub_sub"]),
        "circuit_breaker": {"type": "object", "nullable": True},
        "retention_policy": obj({"policy": STRING}), "retention_policy_enabled": BOOLEAN,
    }, ["max_payload_read_size", "replay_attacks_prevention_enabled", "add_event_id_trace_headers", "disable_endpoint",
        "multiple_endpoint_subscriptions", "verify_dynamic_events", "allow_unmatched_dynamic_urls", "search_policy",
        "ssl", "ratelimit", "strategy", "signature", "request_id_header", "meta_event", "circuit_breaker"]),
    "ApiKey": obj({"uid": STRING, "project_id": STRING, "name": STRING,
                   "role": obj({"type": STRING, "project": STRING}, ["type", "project"]),
                   "key_type": STRING, "expires_at": NULLABLE_STRING, "created_at": STRING,
                   "key": {"type": "string", "description": "`CO.<mask>.<secret>`; shown only in this answer"}},
                  ["uid", "name", "role", "key_type", "expires_at", "key", "created_at"]),
    "Endpoint": obj({
        "uid": STRING, "project_id": STRING, "name": STRING, "url": STRING, "owner_id": STRING, "description": STRING,
        "secrets": {"type": "array", "items": ref("Secret"),
                    "description": "values shown at creation; `[REDACTED]` afterwards"},
        "advanced_signatures": BOOLEAN, "status": {"type": "string", "enum": ["active", "inactive", "paused"]},
        "http_timeout": INTEGER, "rate_limit": INTEGER, "rate_limit_duration": INTEGER, "content_type": STRING,
        "authentication": {"type": "object", "nullable": True}, "support_email": STRING, "slack_webhook_url": STRING,
        "failure_rate": NULLABLE_NUMBER, "period_failure_rate": NULLABLE_NUMBER, "cb_state": NULLABLE_STRING,
        "success_count": NULLABLE_INTEGER, "failure_count": NULLABLE_INTEGER, "retry_count": NULLABLE_INTEGER,
        "created_at": STRING, "updated_at": STRING, "deleted_at": NULLABLE_STRING,
    }, ["uid", "project_id", "url", "name", "secrets", "advanced_signatures", "description", "status", "http_timeout",
        "authentication", "rate_limit", "rate_limit_duration", "content_type", "failure_rate", "cb_state",
        "period_failure_rate", "success_count", "failure_count", "retry_count", "created_at", "updated_at", "deleted_at"]),
    "Secret": obj({"uid": STRING, "value": STRING, "expires_at": NULLABLE_STRING, "created_at": STRING,
                   "updated_at": STRING, "deleted_at": NULLABLE_STRING},
                  ["uid", "value", "expires_at", "created_at", "updated_at", "deleted_at"]),
    "Subscription": obj({
        "uid": STRING, "project_id": STRING, "name": STRING, "type": {"type": "string", "enum": ["api", "cli"]},
        "endpoint_id": STRING, "source_id": NULLABLE_STRING, "function": NULLABLE_STRING,
        "filter_config": obj({"event_types": STRING_LIST, "filter": obj(
            {"is_flattened": BOOLEAN, **{scope: {"type": "object"} for scope in ("headers", "body", "query", "path")}},
            ["is_flattened", "headers", "body", "query", "path"])}, ["event_types", "filter"]),
        "endpoint_metadata": nullable(ref("Endpoint")), "source_metadata": nullable(ref("Source")),
        "device_metadata": {"type": "object", "nullable": True}, "delivery_mode": STRING,
        "created_at": STRING, "updated_at": STRING, "deleted_at": NULLABLE_STRING,
    }, ["uid", "name", "type", "project_id", "function", "source_metadata", "endpoint_metadata", "device_metadata",
        "filter_config", "created_at", "updated_at", "deleted_at"]),
    "Source": obj({
        "uid": STRING, "project_id": STRING, "name": STRING, "type": STRING, "mask_id": STRING, "url": STRING,
        "provider": STRING, "is_disabled": BOOLEAN,
        "verifier": obj({"type": STRING, **{section: {"type": "object", "nullable": True}
                                           for section in ("hmac", "basic_auth", "api_key")}},
                        ["hmac", "basic_auth", "api_key"], description="secrets shown at creation; `[REDACTED]` afterwards"),
        "custom_response": obj({"body": STRING, "content_type": STRING}, ["body", "content_type"]),
        "provider_config": {"type": "object", "nullable": True}, "forward_headers": STRING_LIST,
        "pub_sub": obj({"type": STRING, "workers": INTEGER, **{section: {"type": "object", "nullable": True}
                                                              for section in ("sqs", "google", "kafka", "amqp")}},
                       ["type", "workers", "sqs", "google", "kafka", "amqp"], nullable=True),
        "idempotency_keys": STRING_LIST, "event_type_location": STRING, "body_function": NULLABLE_STRING,
        "header_function": NULLABLE_STRING, "created_at": STRING, "updated_at": STRING, "deleted_at": NULLABLE_STRING,
    }, ["uid", "project_id", "mask_id", "name", "url", "type", "provider", "is_disabled", "verifier", "custom_response",
        "provider_config", "forward_headers", "pub_sub", "idempotency_keys", "event_type_location", "body_function",
        "header_function", "created_at", "updated_at", "deleted_at"]),
    "Event": obj({
        "uid": STRING, "event_type": STRING, "project_id": STRING, "source_id": STRING, "data": ANY,
        "headers": {"type": "object", "additionalProperties": STRING_LIST,
                    "description": "Authorization, Cookie, Proxy-Authorization and the api_key verifier's header are `[REDACTED]`"},
        "endpoints": STRING_LIST, "endpoint_metadata": {"type": "array", "items": ref("Endpoint")},
        "source_metadata": ref("Source"), "url_query_params": STRING, "url_path": STRING, "idempotency_key": STRING,
        "is_duplicate_event": BOOLEAN, "status": {"type": "string", "enum": ["Processing", "Failure", "Success", "Retry", "Pending"]},
        "failure_reason": STRING, "acknowledged_at": NULLABLE_STRING, "created_at": STRING, "updated_at": STRING,
        "deleted_at": NULLABLE_STRING, "data_omitted": DATA_OMITTED,
    }, ["uid", "event_type", "endpoints", "headers", "url_query_params", "url_path", "idempotency_key",
        "is_duplicate_event", "status", "acknowledged_at", "created_at", "updated_at", "deleted_at"]),
    "DeadLetter": obj({"uid": STRING, "reason": STRING, "source_id": STRING, "project_id": STRING, "broker": STRING,
                       "broker_message_id": STRING, "original": {"type": "string", "description": "the message body"},
                       "original_is_utf8": BOOLEAN, "headers": {"type": "object"}},
                      ["reason", "source_id", "project_id"]),
    "Request": obj({"uid": STRING, "project_id": STRING, "source_id": STRING, "source_name": STRING,
                    "cause": {"type": "string", "enum": ["verification_failed", "source_disabled", "body_too_large",
                                                         "unparsable", "rate_limited", "method_not_allowed"]},
                    "status": INTEGER, "message": STRING, "method": STRING, "path": STRING, "query_string": STRING,
                    "headers": {"type": "object"}, "created_at": STRING,
                    "body": {"type": "string", "description": "the first 64 KiB of the body"},
                    "body_encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                    "body_size": {"type": "integer", "nullable": True}, "body_truncated": BOOLEAN,
                    "retried_event_id": STRING},
                   ["uid", "source_id", "cause", "created_at"]),
    "Delivery": obj({
        "uid": STRING, "event_id": STRING, "project_id": STRING, "endpoint_id": STRING, "subscription_id": STRING,
        "event_type": STRING, "device_id": STRING, "target_url": STRING, "url_query_params": STRING,
        "idempotency_key": STRING, "headers": {"type": "object", "additionalProperties": STRING_LIST},
        "status": {"type": "string", "enum": ["Scheduled", "Processing", "Discarded", "Failure", "Success", "Retry"]},
        "latency": STRING, "latency_seconds": {"type": "number"}, "delivery_mode": STRING,
        "metadata": obj({"data": {"type": "object", "nullable": True}, "raw": STRING, "strategy": STRING,
                         "next_send_time": STRING, "num_trials": INTEGER, "interval_seconds": INTEGER,
                         "retry_limit": INTEGER, "max_retry_seconds": INTEGER},
                        ["data", "raw", "strategy", "next_send_time", "num_trials", "interval_seconds", "retry_limit",
                         "max_retry_seconds"]),
        "endpoint_metadata": nullable(ref("Endpoint")), "source_metadata": ref("Source"),
        "cli_metadata": {"type": "object", "nullable": True}, "acknowledged_at": NULLABLE_STRING,
        "created_at": STRING, "updated_at": STRING, "deleted_at": NULLABLE_STRING, "data_omitted": DATA_OMITTED,
    }, ["uid", "device_id", "headers", "url_query_params", "idempotency_key", "latency", "latency_seconds",
        "delivery_mode", "status", "metadata", "cli_metadata", "acknowledged_at", "created_at", "updated_at",
        "deleted_at"]),
}

# -- parameters and responses ---------------------------------------------------------------


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": STRING}


def query_param(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or STRING}


PROJECT_ID = path_param("projectID", "the project's uid")
PAGING = [
    query_param("perPage", "page size, 1-100 (default 20)", {"type": "integer", "minimum": 1}),
    query_param("direction", "`next` (older) or `prev` (newer)", {"type": "string", "enum": ["next", "prev"]}),
    query_param("next_page_cursor", "uid of the last item of the previous page"),
    query_param("prev_page_cursor", "uid of the first item of the next page"),
]
DATE_RANGE = [
    query_param("startDate", "`2006-01-02T15:04:05` UTC (default: 7 days ago)"),
    query_param("endDate", "`2006-01-02T15:04:05` UTC"),
]
ERROR = json_content(ref("Error"))


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": ERROR}


def errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "invalid request (Convoy's validation message)",
        401: "missing or wrong credentials",
        403: "not allowed for this caller",
        404: "not found (or not visible to this caller)",
        408: "the request body did not arrive in time",
        413: "request body too large",
        415: {"description": "the request body is not JSON (empty body, as Convoy)",
              "content": {"text/plain": {"schema": STRING}}},
        429: "exceeded the instance ingest rate limit (`Retry-After` says when to retry)",
        503: "Kafka or the worker is not ready; nothing was accepted, retry (`Retry-After`)",
    }
    out: dict[str, Any] = {}
    for code in codes:
        value = text[code]
        out[str(code)] = value if isinstance(value, dict) else error(value)
    if 429 in codes:
        out["429"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "required": True},
            "X-RateLimit-Limit": {"schema": {"type": "integer"}},
            "X-RateLimit-Remaining": {"schema": {"type": "integer"}},
        }
    return out


def answer(status: int, description: str, data: Schema) -> dict[str, Any]:
    return {str(status): {"description": description, "content": json_content(envelope(data))}}


#: 4xx/503 every authenticated project route can answer.
PROJECT_ERRORS = (400, 401, 403, 404, 503)
BODY_ERRORS = (408, 413, 415)
BEARER = [{"bearer": []}]


def op(summary: str, tag: str, responses: dict[str, Any], *, parameters: list[dict[str, Any]] | None = None,
       body: Schema | None = None, security: list[dict[str, Any]] | None = None, description: str = "") -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses,
                                 "operationId": "", "security": BEARER if security is None else security}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": json_content(body)}
    return operation


# -- paths ----------------------------------------------------------------------------------


def _crud(collection: str, label: str, entity: str, input_schema: str, uid_text: str,
          filters: list[dict[str, Any]], update_schema: str | None = None) -> dict[str, dict[str, Any]]:
    base = f"/api/v1/projects/{{projectID}}/{collection}"
    item = base + "/{uid}"
    uid = path_param("uid", uid_text)
    return {
        base: {
            "post": op(f"Create a {label}", collection, {**answer(201, f"{label} created", ref(entity)),
                                                        **errors(*PROJECT_ERRORS, *BODY_ERRORS)},
                       parameters=[PROJECT_ID], body=ref(input_schema)),
            "get": op(f"List {label}s", collection, {**answer(200, f"{label}s, newest first", listing(entity)),
                                                    **errors(*PROJECT_ERRORS)},
                      parameters=[PROJECT_ID, *filters, *PAGING]),
        },
        item: {
            "get": op(f"Get a {label}", collection, {**answer(200, label, ref(entity)), **errors(*PROJECT_ERRORS)},
                      parameters=[PROJECT_ID, uid]),
            "put": op(f"Update a {label}", collection, {**answer(202, f"{label} updated", ref(entity)),
                                                       **errors(*PROJECT_ERRORS, *BODY_ERRORS)},
                      parameters=[PROJECT_ID, uid], body=ref(update_schema or input_schema)),
            "delete": op(f"Delete a {label}", collection, {**answer(200, f"{label} deleted", {"nullable": True}),
                                                          **errors(*PROJECT_ERRORS)},
                         parameters=[PROJECT_ID, uid]),
        },
    }


def _event_create(kind: str, schema: str, summary: str) -> dict[str, Any]:
    return op(summary, "events", {**answer(201, "accepted: durable in Kafka", ref("Event")),
                                  **errors(*PROJECT_ERRORS, *BODY_ERRORS, 429)},
              parameters=[PROJECT_ID], body=ref(schema),
              description="Answers 201 only after Kafka acknowledged the event (acks=all); 503 otherwise.")


INGEST_BODY = {
    "required": False,
    "content": {
        "application/json": {"schema": ANY},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": STRING}},
        "text/plain": {"schema": STRING},
    },
}
INGEST_OK = {
    "description": "event received (durable in Kafka); a source with a `custom_response` answers its own body",
    "content": {
        "application/json": {"schema": envelope({"type": "integer", "description": "bytes of the stored payload"})},
        "*/*": {"schema": ANY},
    },
}


def _ingest(method: str) -> dict[str, Any]:
    return {
        "summary": f"Receive a webhook ({method})", "tags": ["ingest"], "operationId": "", "security": [],
        "description": "Verified by the source's verifier; `400 Request verification failed` never says why.",
        "parameters": [path_param("maskID", "the source's mask id (its ingest URL)")],
        "requestBody": INGEST_BODY,
        "responses": {"200": INGEST_OK, **errors(400, 403, 404, 408, 413, 429, 503)},
    }


def paths() -> dict[str, dict[str, Any]]:
    project = "/api/v1/projects/{projectID}"
    out: dict[str, dict[str, Any]] = {
        "/health": {"get": op("Readiness of this worker", "operations",
                              {**answer(200, "ready", ref("Health")), **errors(503)}, security=[])},
        "/openapi.json": {"get": op("This document", "operations", {"200": {
            "description": "OpenAPI 3 document", "content": json_content({"type": "object"})}}, security=[])},
        "/metrics": {"get": op("Prometheus metrics of this worker", "operations", {
            "200": {"description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": STRING}}},
            **errors(401, 403)}, description="Needs the instance admin token.")},
        "/api/v1/projects": {"post": op(
            "Create a project (instance admin)", "projects",
            {**answer(201, "project and its API key (the key is shown only here)",
                      obj({"project": ref("Project"), "api_key": ref("ApiKey")}, ["project", "api_key"])),
             **errors(400, 401, 403, 503, *BODY_ERRORS)},
            body=ref("ProjectCreate"), description="Needs the instance admin token."),
            "get": op("List the projects the caller may use", "projects",
                      {**answer(200, "projects, oldest first", {"type": "array", "items": ref("Project")}),
                       **errors(401, 503)},
                      parameters=[query_param("orgID", "Convoy's organisation id (accepted, not needed)")],
                      description="The instance admin token lists every project; a project key lists its own.")},
        project: {
            "get": op("Get a project", "projects", {**answer(200, "project", ref("Project")), **errors(*PROJECT_ERRORS)},
                      parameters=[PROJECT_ID]),
            "put": op("Update a project", "projects", {**answer(202, "project updated", ref("Project")),
                                                       **errors(*PROJECT_ERRORS, *BODY_ERRORS)},
                      parameters=[PROJECT_ID], body=ref("ProjectUpdate")),
            "delete": op("Delete a project with everything in it", "projects",
                         {**answer(200, "project deleted", {"nullable": True}), **errors(*PROJECT_ERRORS)},
                         parameters=[PROJECT_ID]),
        },
        **_crud("endpoints", "Endpoint", "Endpoint", "EndpointInput", "the endpoint's uid",
                [query_param("q", "name contains"), query_param("ownerId", "owner id")]),
        **_crud("subscriptions", "Subscription", "Subscription", "SubscriptionInput", "the subscription's uid",
                [query_param("endpointId", "endpoint uid (repeatable)")], "SubscriptionUpdate"),
        **_crud("sources", "Source", "Source", "SourceInput", "the source's uid",
                [query_param("q", "name contains"), query_param("type", "source type"),
                 query_param("provider", "provider")]),
        project + "/sources/test_function": {"post": op(
            "Run a source transform on a sample payload", "sources",
            {**answer(200, "the transformed payload and the script's console lines",
                      obj({"payload": ANY, "log": STRING_LIST}, ["payload", "log"])),
             **errors(*PROJECT_ERRORS, *BODY_ERRORS)},
            parameters=[PROJECT_ID],
            body=obj({"payload": {"type": "object"}, "function": STRING, "type": {"type": "string", "enum": ["body", "header"]}},
                     ["payload", "function", "type"]),
            description="A `body` result must be a valid broker message; a `header` result an object of strings. "
                        "A script over its time or memory limit, or whose result or console output is over "
                        "`CONVOY_STREAM_SCRIPT_MAX_OUTPUT`, is answered 400 with the limit it exceeded.")},
        project + "/events": {
            "post": _event_create("single", "EventSingle", "Send an event to one endpoint"),
            "get": op("List events", "events", {**answer(200, "events, newest first", listing("Event")),
                                                **errors(*PROJECT_ERRORS)},
                      parameters=[PROJECT_ID, query_param("sourceId", "source uid (repeatable)"),
                                  query_param("endpointId", "endpoint uid (repeatable)"),
                                  query_param("ownerId", "owner id"), query_param("idempotencyKey", "idempotency key"),
                                  query_param("brokerMessageId", "broker message id"),
                                  query_param("query", "event uid prefix, part of the event type or of a source's name, "
                                              "or a whole idempotency key or broker message id"),
                                  query_param("body", "a JSON object the payload must contain"),
                                  query_param("eventType", "event type (repeatable)"),
                                  *DATE_RANGE, *PAGING]),
        },
        project + "/events/fanout": {"post": _event_create("fanout", "EventFanout", "Send an event to every endpoint of an owner")},
        project + "/events/broadcast": {"post": _event_create("broadcast", "EventBroadcast", "Send an event to every matching subscription")},
        project + "/events/dynamic": {"post": _event_create("dynamic", "EventDynamic", "Send an event to a URL (endpoint made on demand)")},
        project + "/events/{eventID}": {"get": op(
            "Get an event", "events", {**answer(200, "event", ref("Event")), **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, path_param("eventID", "the event's uid")])},
        project + "/events/{eventID}/replay": {"put": op(
            "Replay an event", "events", {**answer(200, "the event; its replay is durable in Kafka", ref("Event")),
                                          **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, path_param("eventID", "the event's uid")],
            description="Fresh delivery records (new uids) for the subscriptions that match the event now.")},
        project + "/events/batchreplay": {"post": op(
            "Replay the events a filter selects", "events",
            {**answer(200, "`<n> successful, <m> failed`", STRING), **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, query_param("sourceId", "source uid (repeatable)"),
                        query_param("endpointId", "endpoint uid (repeatable)"),
                        query_param("ownerId", "owner id"), query_param("idempotencyKey", "idempotency key"),
                        query_param("brokerMessageId", "broker message id"), *DATE_RANGE, *PAGING],
            description="Without `perPage` or a cursor, every matching event (at most 10,000); duplicates are "
                        "skipped. `query` is refused, as Convoy does.")},
        project + "/eventdeliveries": {"get": op(
            "List event deliveries", "events", {**answer(200, "deliveries, newest first", listing("Delivery")),
                                                **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, query_param("eventId", "event uid (repeatable)"),
                        query_param("endpointId", "endpoint uid (repeatable)"),
                        query_param("subscriptionId", "subscription uid (repeatable)"),
                        query_param("eventType", "event type (repeatable)"), query_param("status", "status (repeatable)"),
                        query_param("idempotencyKey", "idempotency key"), query_param("brokerMessageId", "broker message id"),
                        query_param("sourceId", "source uid (repeatable)"), *DATE_RANGE, *PAGING])},
        project + "/dead-letters": {"get": op(
            "List dead letters", "events", {**answer(200, "broker messages that could never become events, newest first",
                                                     listing("DeadLetter")), **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, *DATE_RANGE, *PAGING])},
        project + "/requests": {"get": op(
            "List turned-away webhook requests", "events",
            {**answer(200, "requests a source turned away, newest first", listing("Request")), **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, query_param("sourceId", "source uid (repeatable)"),
                        query_param("cause", "cause (repeatable)"), *DATE_RANGE, *PAGING])},
        project + "/requests/{requestID}": {"get": op(
            "Get a turned-away webhook request", "events", {**answer(200, "request", ref("Request")),
                                                           **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, path_param("requestID", "the request's uid")])},
        project + "/requests/{requestID}/retry": {"post": op(
            "Verify a turned-away request again with the source's current config", "events",
            {**answer(201, "it passed and is now an event", obj({"event_id": STRING}, ["event_id"])),
             **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, path_param("requestID", "the request's uid")])},
        project + "/eventdeliveries/{deliveryID}": {"get": op(
            "Get an event delivery", "events", {**answer(200, "delivery", ref("Delivery")), **errors(*PROJECT_ERRORS)},
            parameters=[PROJECT_ID, path_param("deliveryID", "the delivery's uid")])},
        "/ingest/{maskID}": {
            "post": _ingest("POST"), "put": _ingest("PUT"), "patch": _ingest("PATCH"),
            "get": {"summary": "X/Twitter CRC challenge", "tags": ["ingest"], "operationId": "", "security": [],
                    "parameters": [path_param("maskID", "the source's mask id"),
                                   query_param("crc_token", "challenge token")],
                    "responses": {"200": {"description": "`{\"response_token\": \"sha256=...\"}`",
                                          "content": json_content(obj({"response_token": STRING}, ["response_token"]))},
                                  **errors(400, 403, 404, 503)}},
        },
    }
    for path, methods in out.items():
        for method, operation in methods.items():
            operation["operationId"] = _operation_id(method, path)
    return out


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}") for p in path.strip("/").replace(".", "_").split("/") if p not in ("api", "v1")]
    return method + "".join(w[:1].upper() + w[1:] for w in words)


#: Request bodies: every optional field may also be `null`, which means "not sent" (Go's rule).
REQUEST_SCHEMAS = tuple(request_schemas())


def _null_means_absent(schema: Schema) -> Schema:
    """`schema` with `nullable: true` on every optional property, at every level."""
    if schema.get("type") == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            if "$ref" in prop:
                continue
            _null_means_absent(prop)
            if name not in required and prop:
                prop["nullable"] = True
                if "enum" in prop and None not in prop["enum"]:
                    prop["enum"] = [*prop["enum"], None]  # OpenAPI 3.0: nullable does not extend an enum
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        _null_means_absent(schema["items"])
    return schema


def document(server_url: str | None = None) -> dict[str, Any]:
    schemas = copy.deepcopy(SCHEMAS)
    for name in REQUEST_SCHEMAS:
        _null_means_absent(schemas[name])
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "convoy-stream",
            "version": VERSION,
            "description": "Convoy-compatible event ingestion (Sources, REST events) on Kafka. "
                           "Answers use Convoy's envelope `{status, message, data}`.",
        },
        "paths": paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A project API key (`CO.<mask>.<secret>`) for project routes, or the instance "
                               "admin token (`CONVOY_STREAM_ADMIN_TOKEN`) for `POST /api/v1/projects`, "
                               "`/metrics` and any project.",
            }},
        },
        "security": BEARER,
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


_CACHED: bytes | None = None


async def serve(request: web.Request) -> web.Response:
    global _CACHED
    if _CACHED is None:
        _CACHED = orjson.dumps(document())
    return web.Response(body=_CACHED, content_type="application/json")
