"""The request log over HTTP: recording turned-away webhooks, listing them, retrying one.

- `note_answer` (in `front.front_middleware`) sees every answer of `/ingest/{maskID}`; a 4xx that
  `request_log.cause_of` names is recorded in the background (never awaited by the
  request), within the source's rate bound.
- `GET /api/v1/projects/{projectID}/requests` lists them, newest first, with the event
  lists' dates and cursors, filtered by `sourceId` and `cause`.
- `GET .../requests/{requestID}` is one, with its body.
- `POST .../requests/{requestID}/retry` verifies the logged request again with the source's
  *current* config: it becomes an event only if it passes now.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from tables import queries

from .. import request_log
from ..ids import partition_of, scoped
from ..publisher import KafkaUnavailable
from ..webhook_payload import redact_headers
from .context import Context, ctx
from .envelope import ApiError, ok
from .events import _cursor_given
from .webhooks import BODY_KEY, EVENT_KEY, admit
from .listing import many, merge, page_of
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)

INGEST_PREFIX = "/ingest/"


class Recorder:
    """Per worker: the rate bound per source and the writes in flight."""

    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}
        self.in_flight: set[asyncio.Task[None]] = set()
        self.dropped = 0

    def allow(self, source_id: str) -> bool:
        bucket = self.buckets.get(source_id)
        if bucket is None:
            if len(self.buckets) > 10_000:  # sources come and go; never an unbounded map
                self.buckets.clear()
            bucket = self.buckets[source_id] = TokenBucket(request_log.RATE_PER_SECOND, request_log.BURST)
        return bucket.take().allowed

    def write(self, c: Context, doc: dict[str, Any]) -> None:
        if len(self.in_flight) >= request_log.MAX_IN_FLIGHT:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._send(c, doc))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _send(self, c: Context, doc: dict[str, Any]) -> None:
        key = scoped(doc["project_id"], doc["uid"])
        try:
            await c.publisher.send_raw(request_log.topic_name(c.settings.app_id), orjson.dumps(key), orjson.dumps(doc),
                                       partition_of(key, c.publisher.partitions))
        except KafkaUnavailable:
            self.dropped += 1
        except Exception:  # a request log write must never take anything else down
            log.exception("request log write failed")
            self.dropped += 1


RECORDER: web.AppKey[Recorder] = web.AppKey("request_log_recorder", Recorder)


def _message(response: web.StreamResponse) -> str:
    body = getattr(response, "body", None)
    if isinstance(body, (bytes, bytearray)):
        try:
            return str(orjson.loads(body).get("message") or "")
        except (ValueError, AttributeError):
            return ""
    return ""


def note_answer(request: web.Request, response: web.StreamResponse) -> None:
    """Record the answer to an `/ingest/` request if it turned the request away (a logged 4xx)."""
    cause = request_log.cause_of(response.status, _message(response)) if 400 <= response.status < 500 else None
    if cause is not None:
        try:
            _record(request, cause, response.status, _message(response))
        except Exception:  # never turn a 4xx into a 500
            log.exception("request log: could not record a turned-away request")


def _record(request: web.Request, cause: str, status: int, message: str) -> None:
    c = ctx(request)
    mask = request.path[len(INGEST_PREFIX):].split("/", 1)[0]
    source = c.config.source_by_mask(mask) if c.config.ready.is_set() else None
    if source is None or source.get("type") != "http":
        return
    recorder = request.app[RECORDER]
    if not recorder.allow(source["uid"]):
        return
    api_key_header = ((source.get("verifier") or {}).get("api_key") or {}).get("header_name") or ""
    headers = redact_headers(dict(request.headers), extra=[api_key_header] if api_key_header else [])
    doc = request_log.document(
        source=source, cause=cause, status=status, message=message, method=request.method, path=request.path,
        query_string=request.query_string, headers=headers, body=request.get(BODY_KEY),
        partitions=c.publisher.partitions)
    doc["path_qs"] = request.path_qs
    recorder.write(c, doc)


# -- the API -------------------------------------------------------------------------------

async def list_requests(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    return ok(await requests_page(request, project["uid"], request.query), "Requests fetched successfully")


async def requests_page(request: web.Request, project_id: str, q: Any) -> dict[str, Any]:
    """A page of a project's turned-away requests for the query parameters `q`."""
    causes = many(q, "cause")
    if causes - set(request_log.CAUSES):
        raise ApiError(400, f"cause must be one of {', '.join(request_log.CAUSES)}")
    f = request_log.RequestFilter(source_ids=many(q, "sourceId"), causes=causes)
    page, size = page_of(q)
    results = await queries.request_pages(ctx(request), project_id, f, page)
    return merge(results, page, size, cursor_given=_cursor_given(q))


async def find(request: web.Request, project_id: str, uid: str) -> dict[str, Any]:
    doc = await queries.request_by_id(ctx(request), project_id, uid)
    if doc is None:
        raise ApiError(404, "request not found")
    return doc  # type: ignore[no-any-return]


async def get_request(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    return ok(await find(request, project["uid"], request.match_info["requestID"]), "Request fetched successfully")


async def retry(project: dict[str, Any], request: web.Request, uid: str) -> str:
    """Verify a logged request again with its source's current config; the new event's id.

    Raises `ApiError` when it still does not pass (nothing stored), when its body was not
    kept whole, or when its source is gone or disabled.
    """
    c = ctx(request)
    doc = await find(request, project["uid"], uid)
    if doc.get("body_truncated"):
        raise ApiError(400, "the request's body was not kept whole (over 64 KiB, or never read): it cannot be retried")
    source = c.config.get("source", doc["source_id"])
    if source is None or source.get("deleted_at"):
        raise ApiError(400, "the request's source no longer exists")
    if source.get("is_disabled"):
        raise ApiError(400, "source is disabled")
    await admit(request, source, project, method=doc["method"], path=doc["path"],
                path_qs=doc.get("path_qs") or doc["path"], query_string=doc.get("query_string") or "",
                query=parse_qs(doc.get("query_string") or "", keep_blank_values=True),
                headers=dict(doc.get("headers") or {}), body=request_log.body_bytes(doc))
    event_id = request[EVENT_KEY]
    # The log shows the request was retried, and into which event (the agent replaces the document).
    updated = {**doc, "kind": request_log.KIND, "retried_event_id": event_id}
    key = scoped(doc["project_id"], doc["uid"])
    await c.publisher.send_raw(request_log.topic_name(c.settings.app_id), orjson.dumps(key), orjson.dumps(updated),
                               partition_of(key, c.publisher.partitions))
    return str(event_id)


async def retry_request(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    event_id = await retry(project, request, request.match_info["requestID"])
    return ok({"event_id": event_id}, "Request verified and accepted as an event", 201)


def install(router: web.UrlDispatcher) -> None:
    base = "/api/v1/projects/{projectID}/requests"
    router.add_get(base, list_requests)
    router.add_get(base + "/{requestID}", get_request)
    router.add_post(base + "/{requestID}/retry", retry_request)
