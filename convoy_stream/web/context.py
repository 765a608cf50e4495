"""What a handler needs from the worker, reached through the aiohttp request."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tables.config import ConfigStore

from ..publisher import Publisher
from ..settings import Settings
from .auth import project_for, require_admin
from .envelope import ApiError

if TYPE_CHECKING:
    from ..app import ConvoyApp


@dataclass
class Context:
    app: "ConvoyApp"
    settings: Settings
    config: ConfigStore
    publisher: Publisher
    admin_digest: str

    @classmethod
    def of(cls, app: "ConvoyApp") -> "Context":
        return cls(app, app.settings, app.config_store, app.publisher,
                   hashlib.sha256(app.settings.admin_token.encode()).hexdigest())

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
            return project_for(request, self.config, self.admin_digest)
        except ApiError as exc:
            if exc.status not in (401, 404):
                raise
            await self.config.sync()
            return project_for(request, self.config, self.admin_digest)

    def admin(self, request: web.Request) -> None:
        self.require_ready()
        require_admin(request, self.config, self.admin_digest)


def ctx(request: web.Request) -> Context:
    return request.app["convoy"]  # type: ignore[no-any-return]
