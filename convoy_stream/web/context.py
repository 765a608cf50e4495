"""What a handler needs from the worker, reached through the aiohttp request."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from aiohttp import ClientSession, web

from tables.config import ConfigStore

from ..cluster import ask_worker, cluster_secret
from ..ingestion import Tables
from ..liveness import Liveness
from ..publisher import Publisher
from ..settings import Settings
from .accept_cache import AcceptCache
from .auth import project_for, require_admin
from .envelope import ApiError


class Worker(Protocol):
    """All that `web/` uses of the worker (`app.ConvoyApp`), which passes itself to `routes.install`.

    `web/` never imports the app: the app is the composition root above it
    (`tests/unit/test_import_contracts.py`).
    """

    settings: Settings
    config_store: ConfigStore
    publisher: Publisher
    event_tables: Tables
    dead_letters: Any  # the dead-letter table: "<project>/<uid>" -> document
    request_log: Any  # turned-away webhook requests: "<project>/<uid>" -> document (`request_log.py`)
    liveness: Liveness
    rebalancing: bool
    consumer_generation_id: int

    @property
    def should_stop(self) -> bool: ...

    @property
    def http_client(self) -> ClientSession: ...

    @property
    def router(self) -> Any: ...  # Faust's router: `table_metadata(table)` -> {worker url: {topic: partitions}}

    @property
    def consumer(self) -> Any: ...  # Faust's consumer, read for the ingest lag (`metrics.ingest_lag`)

    def active_keys(self) -> Callable[[str], bool]: ...


@dataclass
class Context:
    app: Worker
    settings: Settings
    config: ConfigStore
    publisher: Publisher
    admin_digest: str
    #: What requests work out from config alone, until it changes (`accept_cache.py`).
    cache: AcceptCache

    @classmethod
    def of(cls, app: Worker) -> "Context":
        return cls(app, app.settings, app.config_store, app.publisher,
                   hashlib.sha256(app.settings.admin_token.encode()).hexdigest(), AcceptCache(app.config_store))

    def require_ready(self) -> None:
        if not self.config.ready.is_set():
            raise ApiError(503, "worker is starting, retry later", {"Retry-After": "1"})

    async def project(self, request: web.Request) -> dict[str, Any]:
        """The project in the path, if the caller may use it.

        A key or project created through another worker a moment ago may not
        have reached this worker's config view yet: on a miss, catch up once.
        """
        self.require_ready()
        try:
            return project_for(request, self.config, self.admin_digest, self.cache)
        except ApiError as exc:
            if exc.status not in (401, 404):
                raise
            await self.config.sync()
            return project_for(request, self.config, self.admin_digest, self.cache)

    def admin(self, request: web.Request) -> None:
        self.require_ready()
        require_admin(request, self.config, self.admin_digest)

    async def ask_worker(self, worker: str, name: str, project_id: str, key: str) -> Any:
        """Another worker's answer to a question of `tables.queries`, which takes this context."""
        return await ask_worker(self.app.http_client, cluster_secret(self.config), worker, name, project_id, key)


def ctx(request: web.Request) -> Context:
    return request.app["convoy"]  # type: ignore[no-any-return]
