"""Who is calling: the instance admin, or a project through its API key.

API keys are `CO.<mask>.<secret>`; the mask finds the stored key and the
secret's SHA-256 digest is compared in constant time. The admin token is held
only as a digest too. With an `AcceptCache`, a key that authenticated once is
recognised again by comparing its secret (in constant time) with the one that
matched, without hashing, until the config changes (`accept_cache.py`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tables.config import ConfigStore

from ..ids import key_digest
from .accept_cache import AcceptCache
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


def authenticate(request: web.Request, config: ConfigStore, admin_digest: str,
                 cache: AcceptCache | None = None) -> Caller:
    token = _bearer(request)
    parts = token.split(".")
    is_key = len(parts) == 3 and parts[0] == "CO"
    if is_key and cache is not None:
        # Only a token that was not the admin's and matched its stored digest is kept, so an
        # equal token is that project's key again.
        known = cache.get(("apikey", parts[1]))
        if known is not None and hmac.compare_digest(known[0], parts[2].encode()):
            return known[1]  # type: ignore[no-any-return]
    if hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), admin_digest):
        return Caller(admin=True)
    if is_key:
        stored = config.get("apikey", parts[1])
        digest = key_digest(parts[2])
        if stored and hmac.compare_digest(stored["digest"], digest):
            caller = Caller(admin=False, project_id=stored["project_id"])
            if cache is not None:
                cache.put(("apikey", parts[1]), (parts[2].encode(), caller))
            return caller
    raise ApiError(401, "authorization failed")


def require_admin(request: web.Request, config: ConfigStore, admin_digest: str) -> Caller:
    caller = authenticate(request, config, admin_digest)
    if not caller.admin:
        raise ApiError(403, "only the instance admin can do this")
    return caller


def project_for(request: web.Request, config: ConfigStore, admin_digest: str,
                cache: AcceptCache | None = None) -> dict[str, Any]:
    """The project in the path, if the caller may use it (404 is not leaked to others)."""
    caller = authenticate(request, config, admin_digest, cache)
    project_id = request.match_info["projectID"]
    if not caller.admin and caller.project_id != project_id:
        raise ApiError(401, "authorization failed")
    project = config.get("project", project_id)
    if project is None:
        raise ApiError(404, "project not found")
    return project
