"""Faust's codec hooks: a codec that is orjson.

A Faust `Codec` serializes through its private `_dumps` / `_loads` hooks; `OrJSON`
overrides them (`convoy_stream/codecs.py` registers it as "orjson").
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


class OrJSON(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)
