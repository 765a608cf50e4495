"""The request log: webhook requests a source turned away, kept so a user can see why.

A turned-away request (verification failed, source disabled, body too large, unparsable,
rate limited, method not allowed) becomes a document with its cause, time, source,
headers (credentials redacted) and the first `BODY_KEPT` bytes of its body.

Guarantees:
- Recording never slows or weakens the accept path: the rejection is answered at once and
  the document is written to Kafka in the background; if Kafka is slow, at most
  `MAX_IN_FLIGHT` writes wait per worker and further ones are dropped (counted).
- Bounded per source, so the log cannot fill a disk: each worker records at most
  `RATE_PER_SECOND` requests a second per source (bursts of `BURST`), the agent keeps at
  most `KEPT_PER_SOURCE` documents per source (the oldest go first), and a document is
  forgotten after `RETENTION` (or the project's retention, if shorter).
- Every document of a source travels on one partition (`partition_of_source`), so one agent
  sees all of them and its cap per source is exact.

- Kafka keeps the documents' own topic (`<app id>-requests`) for `TOPIC_RETENTION_MS` only:
  its agent stores them in a table (whose compacted changelog is bounded by the cap) within
  seconds, so the topic holds at most that long of the rate bound.

Documents are stored keyed like events (`<project>/<uid>`, the uid naming its partition),
plus one index row per source.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, MutableMapping

from tables.scan import scan

import orjson

from . import clock
from .ids import by_partition, mint_id, partition_for, scoped
from .retention import cutoff_uid, retention_of

#: The records of the request topic that carry a turned-away request.
KIND = "request"
#: The field of a request topic record that names logged requests to forget.
EXPIRE_REQUESTS = "expire_requests"
#: The request topic's harmless record (`publisher.anchor_group`): an expire command for nothing.
ANCHOR = orjson.dumps({"project_id": "", EXPIRE_REQUESTS: []})

BODY_KEPT = 64 * 1024
RATE_PER_SECOND = 1.0
BURST = 20
TOPIC_RETENTION_MS = 3600 * 1000
TOPIC_SEGMENT_BYTES = 64 * 1024 * 1024
KEPT_PER_SOURCE = 1000
RETENTION_SECONDS = 72 * 3600
MAX_IN_FLIGHT = 64

CAUSES = ("verification_failed", "source_disabled", "body_too_large", "unparsable", "rate_limited",
          "method_not_allowed")


def cause_of(status: int, message: str) -> str | None:
    """The request log's cause for an ingest answer, or None when it is not logged (404, 408, 5xx)."""
    if status == 403:
        return "source_disabled"
    if status == 413:
        return "body_too_large"
    if status == 429:
        return "rate_limited"
    if status == 405:
        return "method_not_allowed"
    if status == 400:
        lowered = message.lower()
        if "verif" in lowered or "provider" in lowered:
            return "verification_failed"
        return "unparsable"
    return None


def topic_name(app_id: str) -> str:
    return f"{app_id}-requests"


def partition_of_source(source_id: str, partitions: int) -> int:
    return partition_for(source_id, partitions)


def _body_fields(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {"body": "", "body_encoding": "utf-8", "body_size": None, "body_truncated": True}
    kept = body[:BODY_KEPT]
    try:
        text, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode(), "base64"
    return {"body": text, "body_encoding": encoding, "body_size": len(body), "body_truncated": len(body) > BODY_KEPT}


def document(*, source: Mapping[str, Any], cause: str, status: int, message: str, method: str, path: str,
             query_string: str, headers: Mapping[str, str], body: bytes | None, partitions: int,
             now: datetime | None = None) -> dict[str, Any]:
    """The stored form of a turned-away request; `headers` must already be redacted."""
    moment = now or clock.now()
    uid = mint_id(partition_of_source(source["uid"], partitions), partitions, timestamp=moment.timestamp())
    return {
        "kind": KIND, "uid": uid, "project_id": source["project_id"], "source_id": source["uid"],
        "source_name": source.get("name", ""), "cause": cause, "status": status, "message": message,
        "method": method, "path": path, "query_string": query_string, "headers": dict(headers),
        "created_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **_body_fields(body),
    }


def body_bytes(doc: Mapping[str, Any]) -> bytes:
    raw = doc.get("body") or ""
    return base64.b64decode(raw) if doc.get("body_encoding") == "base64" else raw.encode("utf-8")


# -- the agent's side ----------------------------------------------------------------------

def _index_key(project_id: str, source_id: str) -> str:
    # '#' keeps the index rows out of the `<project>/` range that lists and sweeps walk.
    return f"{project_id}#{source_id}"


def store(table: MutableMapping[str, Any], doc: dict[str, Any]) -> None:
    """Keep `doc` (new, or a newer version of a kept one), forgetting the source's oldest beyond the cap."""
    key = scoped(doc["project_id"], doc["uid"])
    index_key = _index_key(doc["project_id"], doc["source_id"])
    kept = list(table.get(index_key) or [])
    if doc["uid"] not in kept:
        kept.append(doc["uid"])
    while len(kept) > KEPT_PER_SOURCE:
        table.pop(scoped(doc["project_id"], kept.pop(0)), None)
    table[key] = doc
    table[index_key] = kept


def apply(table: MutableMapping[str, Any], record: Any) -> None:
    """What the agent does with one record of the request topic (anything else is ignored)."""
    if not isinstance(record, dict):
        return
    if record.get("kind") == KIND:
        store(table, record)
    elif EXPIRE_REQUESTS in record:
        forget(table, str(record.get("project_id", "")), record[EXPIRE_REQUESTS])


def expire_commands(project_id: str, uids: list[str], partitions: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) of the commands that make the agents forget `uids`, each on the
    partition of the documents it names."""
    return [(orjson.dumps(scoped(project_id, group[0])), orjson.dumps({"project_id": project_id, EXPIRE_REQUESTS: group}),
             partition) for partition, group in by_partition(project_id, uids, partitions).items()]


def forget(table: MutableMapping[str, Any], project_id: str, uids: Iterable[str]) -> None:
    for uid in uids:
        doc = table.pop(scoped(project_id, uid), None)
        if doc is None:
            continue
        index_key = _index_key(project_id, doc["source_id"])
        kept = [u for u in (table.get(index_key) or []) if u != uid]
        if kept:
            table[index_key] = kept
        else:
            table.pop(index_key, None)


def expired(table: Any, projects: Iterable[dict[str, Any]], *, active: Callable[[str], bool], now: datetime,
            limit: int = 2000) -> Iterator[tuple[str, list[str]]]:
    """(project id, uids) of local documents older than the log's retention (or the project's, if shorter)."""
    for project in projects:
        upper = cutoff_uid(now, min(RETENTION_SECONDS, retention_of(project)))
        uids = []
        for key, _ in scan(table, project["uid"] + "/", active=active, upper=upper, descending=False):
            uids.append(key.split("/", 1)[1])
            if len(uids) >= limit:
                break
        if uids:
            yield project["uid"], uids


# -- the filter of the list ----------------------------------------------------------------

@dataclass(frozen=True)
class RequestFilter:
    source_ids: frozenset[str] = field(default_factory=frozenset)
    causes: frozenset[str] = field(default_factory=frozenset)

    def accepts(self, doc: Mapping[str, Any]) -> bool:
        return ((not self.source_ids or doc.get("source_id") in self.source_ids)
                and (not self.causes or doc.get("cause") in self.causes))


def summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document as the API lists it (`kind` is the topic's business)."""
    return {k: v for k, v in doc.items() if k != "kind"}
