"""How the workers of one deployment call each other: a shared secret, and the query call.

Workers ask each other the questions of `tables/queries.py` about table entries they own
(`GET /_internal/query/{name}`, answered by `web/internal.py`) and send this secret with each
call. The secret lives in the config topic, so every worker of the deployment knows it
without any setting; the first worker to start creates it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout
from yarl import URL

from tables.config import ConfigStore
from tables.queries import Unavailable

#: The request header that carries the cluster secret.
HEADER = "X-Convoy-Stream-Internal"
#: How long a worker waits for another one's answer before the request answers 503.
ASK_TIMEOUT = 5.0

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


async def ask_worker(session: ClientSession, secret: str, worker: str, name: str, project_id: str, key: str) -> Any:
    """The answer of the worker at `worker` to question `name` (`tables.queries.answer_locally`).

    Anything but its answer (an error status, no connection, a timeout, a connection closed
    mid-answer) raises `Unavailable`: the caller's client retries, it never sees "not found".
    """
    target = URL(worker).with_path(f"/_internal/query/{name}").with_query({"project": project_id, "key": key})
    try:
        async with session.get(target, headers={HEADER: secret}, timeout=ClientTimeout(total=ASK_TIMEOUT)) as response:
            if response.status != 200:
                raise Unavailable("a worker could not answer, retry later")
            return orjson.loads(await response.read())["result"]
    except (OSError, asyncio.TimeoutError, ClientError) as exc:
        raise Unavailable("a worker could not answer, retry later") from exc
