"""Who is calling: the instance admin, or a project through its API key.

API keys are `CO.<mask>.<secret>`; the mask finds the stored key and the
secret's SHA-256 digest is compared in constant time. The admin token is held
only as a digest too.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tables.config import ConfigStore

from ..ids import key_digest
from .envelope import ApiError


@dataclass(frozen=True)
class Caller:
    admin: bool
    project_id: str = ""


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].upper() != "BEARER" or not parts[1]:
        raise ApiError(401, "Authentication required")
    return parts[1]


def authenticate(request: web.Request, config: ConfigStore, admin_digest: str) -> Caller:
    token = _bearer(request)
    if hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), admin_digest):
        return Caller(admin=True)
    parts = token.split(".")
    if len(parts) == 3 and parts[0] == "CO":
        stored = config.get("apikey", parts[1])
        digest = key_digest(parts[2])
        if stored and hmac.compare_digest(stored["digest"], digest):
            return Caller(admin=False, project_id=stored["project_id"])
    raise ApiError(401, "authorization failed")


def require_admin(request: web.Request, config: ConfigStore, admin_digest: str) -> Caller:
    caller = authenticate(request, config, admin_digest)
    if not caller.admin:
        raise ApiError(403, "only the instance admin can do this")
    return caller


def project_for(request: web.Request, config: ConfigStore, admin_digest: str) -> dict[str, Any]:
    """The project in the path, if the caller may use it (404 is not leaked to others)."""
    caller = authenticate(request, config, admin_digest)
    project_id = request.match_info["projectID"]
    if not caller.admin and caller.project_id != project_id:
        raise ApiError(401, "authorization failed")
    project = config.get("project", project_id)
    if project is None:
        raise ApiError(404, "project not found")
    return project
