"""An orjson codec for Faust: records, table rows and changelogs are JSON either way,
but stdlib json with Faust's encoder class is a large share of the per-event cost."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

from .faust_ext.codecs import OrJSON


codecs.register("orjson", OrJSON())


def dumps_record(record: Any) -> bytes:
    """The bytes Faust writes for a record with the orjson serializer, without its registry's layers."""
    return orjson.dumps(record.to_representation(), option=orjson.OPT_NON_STR_KEYS)
