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

    def project(self, request: web.Request) -> dict[str, Any]:
        self.require_ready()
        return project_for(request, self.config, self.admin_digest)

    def admin(self, request: web.Request) -> None:
        self.require_ready()
        require_admin(request, self.config, self.admin_digest)


def ctx(request: web.Request) -> Context:
    return request.app["convoy"]  # type: ignore[no-any-return]
