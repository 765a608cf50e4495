"""What the dead-letter topic holds, and the check of each record the dead-letter agent reads.

The topic is ours (`Publisher.dead_letter`, `Publisher.expire_dead_letters`), but it is a
Kafka topic: another tool can write to it. The agent reads its records as bytes and keeps
only what `read` accepts, so a record that is not ours (a key or value that is not JSON, a
value of another shape, a letter the table cannot store) is skipped with one log line and a metric, never a crash of the
agent: Faust would throw its decode error into the agent, which its supervisor restarts onto
the same uncommitted record, forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import os

import orjson

from .ids import scoped
from .publisher import EXPIRE_DEAD_LETTERS


#: FOR TESTS ONLY, never set in production: the dead-letter agent of a worker whose environment
#: sets this variable (at least 16 characters) raises `InjectedCrash` on a dead letter whose key
#: contains its value, and again on each restart onto the same record: the agent crash the
#: liveness tests need, without keeping a bug for them. Unset (the default) it does nothing.
TEST_CRASH_ON_DEAD_LETTER = "CONVOY_STREAM_TEST_ONLY_CRASH_DEAD_LETTER_AGENT_ON"


def crash_marker_for_tests() -> str:
    """The marker `TEST_CRASH_ON_DEAD_LETTER` sets, or "" (never matches) when unset or short."""
    marker = os.environ.get(TEST_CRASH_ON_DEAD_LETTER, "")
    return marker if len(marker) >= 16 else ""


class InjectedCrash(RuntimeError):
    """Raised by the dead-letter agent only when `TEST_CRASH_ON_DEAD_LETTER` asks for it."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{TEST_CRASH_ON_DEAD_LETTER} matched the dead letter {key}")


class NotADeadLetter(ValueError):
    """The record is neither a dead letter nor an expire command; the message says why."""


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter to keep under `key` ("<project>/<uid>")."""

    key: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Expire:
    """Forget these dead letters of a project."""

    project_id: str
    uids: list[str]


def read(key: bytes | None, value: bytes | None) -> DeadLetter | Expire:
    """The record's meaning, or NotADeadLetter.

    A dead letter is keyed by its project and uid, as `Publisher.dead_letter` writes it, so it
    is listed under its own project only.
    """
    try:
        key_text = orjson.loads(key) if key is not None else None
    except orjson.JSONDecodeError:
        raise NotADeadLetter("its key is not JSON") from None
    if not isinstance(key_text, str):
        raise NotADeadLetter("its key is not a JSON string")
    try:
        document = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        raise NotADeadLetter("its value is not JSON") from None
    if not isinstance(document, dict):
        raise NotADeadLetter("its value is not a JSON object")
    project_id = document.get("project_id")
    if not isinstance(project_id, str):
        raise NotADeadLetter("its value has no project_id string")
    if EXPIRE_DEAD_LETTERS in document:
        uids = document[EXPIRE_DEAD_LETTERS]
        if not isinstance(uids, list) or not all(isinstance(uid, str) for uid in uids):
            raise NotADeadLetter(f"its {EXPIRE_DEAD_LETTERS} is not a list of strings")
        return Expire(project_id, uids)
    uid = document.get("uid")
    if not isinstance(uid, str) or not uid:
        raise NotADeadLetter("its value has no uid string")
    if key_text != scoped(project_id, uid):
        raise NotADeadLetter("its key is not its project_id/uid")
    if not _storable(document):
        raise NotADeadLetter("its value nests too deeply to be stored")
    return DeadLetter(key_text, document)


def _storable(document: dict[str, Any]) -> bool:
    """Whether the table's codec (orjson, `faust_ext.codecs.OrJSON`) can write `document`.

    orjson reads JSON nested up to 1024 levels but writes at most 254: a letter between the
    two decodes here and would fail at every write to the table, each time the agent is
    restarted onto it.
    """
    try:
        orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return False
    return True
