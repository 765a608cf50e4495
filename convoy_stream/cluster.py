"""A secret shared by the workers of one deployment, for worker-to-worker calls.

Workers ask each other for table entries they own (`GET /_internal/query/{name}`,
answered by `internal_query` in `web/lookups.py`) and send this secret with each
call. The secret lives in the config topic, so every worker of the deployment knows it
without any setting; the first worker to start creates it.
"""

from __future__ import annotations

import secrets

from tables.config import ConfigStore

_KEY = ("cluster", "internal")


async def ensure_cluster_secret(config: ConfigStore) -> str:
    existing = config.get(*_KEY)
    if existing and existing.get("internal_secret"):
        return str(existing["internal_secret"])
    value = {"uid": "internal", "internal_secret": secrets.token_urlsafe(32)}
    await config.put(*_KEY, value)
    return str(value["internal_secret"])


def cluster_secret(config: ConfigStore) -> str:
    existing = config.get(*_KEY) or {}
    return str(existing.get("internal_secret", ""))
