"""Debug logging that never writes record contents.

aiokafka's producer logs every record's key and value at debug level. Those values are
config records (verifier secrets, broker credentials, endpoint secrets, the cluster secret)
and events (payloads, request headers), so `CONVOY_STREAM_LOG_LEVEL=debug` would write every
secret into the log. The filter keeps the line and shows sizes instead of the bytes. The AWS
SDK's debug lines (signed request headers, message bodies) are not written at all.
"""

from __future__ import annotations

import logging
from typing import Any

#: Loggers that put record keys and values in their debug lines, with the message they use.
_RECORD_LOGGERS = {"aiokafka.producer.producer": "Sending (key=%s value=%s) to %s"}
#: Libraries whose debug lines print whole signed requests (the AWS SDK: the access key id in
#: `Authorization`, message bodies): they log from INFO up whatever the level asked for.
_NO_DEBUG = ("botocore", "aiobotocore")


def _size(value: Any) -> str:
    return "None" if value is None else f"<{len(value)} bytes>" if hasattr(value, "__len__") else "<value>"


class RecordContentFilter(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.message and isinstance(record.args, tuple) and len(record.args) == 3:
            key, value, tp = record.args
            record.args = (_size(key), _size(value), tp)
        return True


def install() -> None:
    """Attach the filters (idempotent): before any producer logs."""
    for name, message in _RECORD_LOGGERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, RecordContentFilter) for f in logger.filters):
            logger.addFilter(RecordContentFilter(message))
    for name in _NO_DEBUG:
        logging.getLogger(name).setLevel(logging.INFO)
