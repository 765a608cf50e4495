"""The dead-letter agent keeps only what `dead_letters.read` accepts; anything else is skipped."""

from __future__ import annotations

import orjson
import pytest

from convoy_stream.dead_letters import DeadLetter, Expire, NotADeadLetter, read
from convoy_stream.publisher import EXPIRE_DEAD_LETTERS, anchor_records

LETTER = {"uid": "u1", "project_id": "p1", "reason": "r"}


def test_a_dead_letter_as_the_publisher_writes_it() -> None:
    assert read(orjson.dumps("p1/u1"), orjson.dumps(LETTER)) == DeadLetter("p1/u1", LETTER)


def test_an_expire_command_and_the_anchor_record() -> None:
    assert read(orjson.dumps("p1/u1"), orjson.dumps({"project_id": "p1", EXPIRE_DEAD_LETTERS: ["u1", "u2"]})) == \
        Expire("p1", ["u1", "u2"])
    anchor = anchor_records("ingest", "dead")["dead"]
    assert read(b'"anchor"', anchor) == Expire("", [])


@pytest.mark.parametrize(("key", "value", "why"), [
    (b"\xff\xfe", orjson.dumps(LETTER), "its key is not JSON"),
    (None, orjson.dumps(LETTER), "its key is not a JSON string"),
    (b"42", orjson.dumps(LETTER), "its key is not a JSON string"),
    (orjson.dumps("p1/u1"), b"\xffgarbage", "its value is not JSON"),
    (orjson.dumps("p1/u1"), None, "its value is not a JSON object"),
    (orjson.dumps("p1/u1"), b"[1]", "its value is not a JSON object"),
    (orjson.dumps("p1/u1"), orjson.dumps({"uid": "u1"}), "its value has no project_id string"),
    (orjson.dumps("p1/u1"), orjson.dumps({"project_id": "p1"}), "its value has no uid string"),
    (orjson.dumps("p2/u1"), orjson.dumps(LETTER), "its key is not its project_id/uid"),
    (orjson.dumps("p1/u1"), orjson.dumps({"project_id": "p1", EXPIRE_DEAD_LETTERS: "u1"}),
     f"its {EXPIRE_DEAD_LETTERS} is not a list of strings"),
    # orjson reads 1024 levels and writes 254: it decodes, and the table could never store it.
    (orjson.dumps("p1/u1"), b'{"uid": "u1", "project_id": "p1", "headers": ' + b"[" * 300 + b"]" * 300 + b"}",
     "its value nests too deeply to be stored"),
])
def test_anything_else_is_not_a_dead_letter(key: bytes | None, value: bytes | None, why: str) -> None:
    with pytest.raises(NotADeadLetter, match=f"^{why}$"):
        read(key, value)
