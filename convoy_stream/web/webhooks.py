"""Webhook ingest: `POST|PUT|PATCH /ingest/{maskID}` and the X/Twitter CRC `GET`.

Order matters (docs/decisions.md#ingest-order): find the source, refuse disabled ones,
read the body within the project's size limit while streaming, verify the
raw bytes (then the converted body, as Convoy), and only then touch
idempotency. The answer is sent after Kafka acknowledged the record.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from .. import metrics
from ..clock import timestamp
from ..ids import dedup_key
from ..limits import DEFAULT_MAX_PAYLOAD_READ_SIZE, MAX_JSON_DEPTH, MAX_PAYLOAD_READ_SIZE, JsonTooDeep, check_json_depth
from ..records import IngestRecord
from ..verifiers import (UnknownProvider, VerificationError, Verifier, VerifierConfigError, WebhookRequest, build_verifier,
                         twitter_crc_response)
from ..webhook_payload import PayloadError, convert_body, extract_event_type, forwarded_headers, idempotency_key, loads_json, redact_headers
from .context import Context, ctx
from .body import read_body
from .envelope import ApiError, json_response
from .events import DUPLICATE, is_known_duplicate

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD = DEFAULT_MAX_PAYLOAD_READ_SIZE
CHUNK = 64 * 1024


async def _source(c: Context, request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The enabled HTTP source of the path and its project (kept in `c.cache` until config changes)."""
    c.require_ready()
    mask = request.match_info["maskID"]
    found = c.cache.get(("source", mask))
    if found is not None:
        return found  # type: ignore[no-any-return]
    source = c.config.source_by_mask(mask)
    if source is None:
        await c.config.sync()  # created through another worker a moment ago?
        source = c.config.source_by_mask(mask)
    if source is None:
        raise ApiError(404, "Resource not found")
    if source.get("type") != "http":
        raise ApiError(400, "Source type needs to be HTTP")
    if source.get("is_disabled"):
        raise ApiError(403, "source is disabled")
    project = c.config.get("project", source["project_id"])
    if project is None:
        raise ApiError(404, "Resource not found")
    return c.cache.put(("source", mask), (source, project))  # type: ignore[no-any-return]


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes whether or not Content-Length was sent,
    and answering 408 to a client that sends it too slowly (`body.read_body`)."""
    return await read_body(request, limit)


def payload_limit(project: dict[str, Any]) -> int:
    """The project's `max_payload_read_size`, never above what an event can store (a project
    saved before that bound existed may hold more)."""
    limit = int((project.get("config") or {}).get("max_payload_read_size") or DEFAULT_MAX_PAYLOAD)
    return min(limit, MAX_PAYLOAD_READ_SIZE)


def _payload(converted: bytes) -> tuple[Any, str | None]:
    """(data, None) for a JSON body, (None, text) for any other; too deep a JSON body is a 400."""
    try:
        # Well-formed JSON decodes the same with orjson straight from the bytes; anything it
        # refuses (invalid UTF-8, numbers Go converts, not JSON) takes the path below.
        return check_json_depth(orjson.loads(converted), converted), None
    except (orjson.JSONDecodeError, JsonTooDeep, RecursionError):
        pass
    try:
        return loads_json(converted.decode("utf-8")), None
    except (JsonTooDeep, RecursionError):
        raise ApiError(400, f"request body contains JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        return None, converted.decode("utf-8", "replace")


def _verifier(c: Context, source: dict[str, Any]) -> Verifier:
    """The source's verifier, built once per source until config changes (it judges time,
    such as a rotated secret's expiry, at each request, so keeping it changes nothing)."""
    kept = c.cache.get(("verifier", source["uid"]))
    if kept is not None and kept[0] is source:
        return kept[1]  # type: ignore[no-any-return]
    verifier = build_verifier(source)
    c.cache.put(("verifier", source["uid"]), (source, verifier))
    return verifier


def _verify(source: dict[str, Any], request: WebhookRequest, converted: bytes | None,
            c: Context | None = None) -> None:
    """Raw body first, then the converted body (Convoy's compatibility fallback)."""
    try:
        verifier = _verifier(c, source) if c is not None else build_verifier(source)
    except UnknownProvider as exc:
        raise ApiError(400, "Provider type undefined") from exc
    except VerifierConfigError as exc:
        log.warning("source %s has an unusable verifier: %s", source["uid"], exc)
        raise ApiError(400, "source has no valid verifier configured") from exc
    try:
        verifier.verify(request)
        return
    except VerificationError as first:
        reason = first
    if converted is not None and converted != request.body:
        try:
            verifier.verify(WebhookRequest(request.method, request.url, request.headers, converted))
            return
        except VerificationError:
            pass
    log.info("webhook verification failed for source %s (%s): %s: %s", source["uid"],
             source.get("provider") or (source.get("verifier") or {}).get("type") or "noop", type(reason).__name__, reason)
    metrics.record_verification_failure(source["uid"])
    raise ApiError(400, "Request verification failed")


async def ingest(request: web.Request) -> web.Response:
    c = ctx(request)
    source, project = await _source(c, request)
    body = await _read_limited(request, payload_limit(project))
    request[BODY_KEY] = body  # for the request log, should the request be turned away
    query = {k: request.query.getall(k) for k in request.query.keys()} if request.query_string else {}
    duplicate, size = await admit(request, source, project, method=request.method, path=request.path,
                                  path_qs=request.path_qs, query_string=request.query_string, query=query, headers=dict(request.headers),
                                  body=body)
    custom = source.get("custom_response") or {}
    if custom.get("body"):
        return web.Response(body=custom["body"].encode(), status=200,
                            content_type=None, headers={"Content-Type": custom.get("content_type") or "text/plain; charset=utf-8"})
    return json_response({"status": True, "message": DUPLICATE if duplicate else "Event received", "data": size})


#: Where `ingest` leaves the body it read, for the request log (`request_log_api.py`).
BODY_KEY: web.RequestKey[bytes] = web.RequestKey("ingest_body", bytes)


async def admit(request: web.Request, source: dict[str, Any], project: dict[str, Any], *, method: str, path: str,
                path_qs: str, query_string: str, query: dict[str, list[str]], headers: dict[str, str],
                body: bytes) -> tuple[bool, int]:
    """Verify a webhook with the source's current config and publish it durably.

    Returns (whether it is a known duplicate, the converted body's size). Raises `ApiError`
    (4xx) when the request is turned away; nothing is stored then. The request log's retry
    calls this with a logged request.
    """
    c = ctx(request)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    try:
        converted: bytes | None = convert_body(content_type, body)
    except PayloadError:
        converted = None
    _verify(source, WebhookRequest(method, c.settings.base_url + path_qs, headers, body), converted, c)
    if converted is None:
        raise ApiError(400, "Invalid request format")
    data, raw = _payload(converted)

    event_type = source["mask_id"]
    if source.get("event_type_location"):
        try:
            event_type = extract_event_type(source["event_type_location"], headers=headers, query=query, body=converted)
        except PayloadError as exc:
            raise ApiError(400, str(exc)) from exc
    try:
        checksum = idempotency_key(source["uid"], source.get("idempotency_keys") or [], headers=headers, query=query,
                                   body=body, content_type=content_type) or ""
    except PayloadError as exc:
        raise ApiError(400, str(exc)) from exc

    api_key_header = ((source.get("verifier") or {}).get("api_key") or {}).get("header_name") or ""
    stored = redact_headers(headers, extra=[api_key_header] if api_key_header else [])
    stored["X-Convoy-Source-Id"] = source["mask_id"]
    key = dedup_key(project["uid"], checksum)
    record = IngestRecord.build(
        uid=c.publisher.mint_event_id(project["uid"], key), project_id=project["uid"], kind="webhook", event_type=event_type,
        data=data, raw=raw, created_at=timestamp(), source_id=source["uid"], idempotency_key=checksum, dedup_key=key,
        headers=stored, forward_headers=forwarded_headers(stored, source.get("forward_headers")),
        url_query_params=query_string, url_path=path,
    )
    duplicate = bool(checksum) and await is_known_duplicate(c, project["uid"], checksum)
    await c.publisher.publish(record)
    request[EVENT_KEY] = record.uid
    return duplicate, len(converted)


#: The id of the event `admit` published.
EVENT_KEY: web.RequestKey[str] = web.RequestKey("ingest_event_id", str)


async def crc(request: web.Request) -> web.Response:
    """X/Twitter's challenge-response check; records when the source last passed it."""
    c = ctx(request)
    source, _ = await _source(c, request)
    if not source.get("provider"):
        raise ApiError(400, "Provider type undefined")
    if source["provider"] != "twitter":
        raise ApiError(400, "Provider type is not supported")
    token = request.query.get("crc_token", "")
    secret = ((source.get("verifier") or {}).get("hmac") or {}).get("secret", "")
    if not token or not secret:
        raise ApiError(400, "CRC verification failed")
    stamp = timestamp()
    updated = {**source, "provider_config": {"twitter": {"crc_verified_at": stamp}}}
    await c.config.put("source", source["uid"], updated)
    return json_response(twitter_crc_response(secret, token))


def install(router: web.UrlDispatcher) -> None:
    for method in ("POST", "PUT", "PATCH"):
        router.add_route(method, "/ingest/{maskID}", ingest)
    router.add_get("/ingest/{maskID}", crc)
