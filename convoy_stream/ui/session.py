"""Dashboard sessions: who is signed in, proven by a signed cookie any worker can check.

Guarantees:
- The cookie never holds a credential. It holds who signed in (the admin, or a project
  through the mask of its API key), a prefix of the credential's digest and an expiry,
  signed with HMAC-SHA256 under a key derived from the deployment's cluster secret, which
  every worker has (`cluster.py`): any worker can check a session, none has to remember it.
- A session ends when the credential does: a deleted API key, or a changed admin token,
  no longer matches the digest prefix in the cookie.
- The cookie is `HttpOnly` and `SameSite=Strict`, scoped to `/ui`, `Secure` when the
  public URL is https, and lasts `SESSION_SECONDS`.
- Every state-changing form carries a CSRF token bound to the session (an HMAC of its
  nonce); the sign-in form, before any session, a double-submit token from its own cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from tables.config import ConfigStore

from .. import clock
from ..cluster import cluster_secret
from ..ids import key_digest

COOKIE = "cs_session"
SIGNIN_COOKIE = "cs_signin"
SESSION_SECONDS = 12 * 3600
_DIGEST_PREFIX = 24


@dataclass(frozen=True)
class Session:
    admin: bool
    project_id: str
    nonce: str
    expires: int

    def may_see(self, project_id: str) -> bool:
        return self.admin or self.project_id == project_id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(config: ConfigStore) -> bytes:
    secret = cluster_secret(config)
    if not secret:
        raise LookupError("the deployment's cluster secret is not known yet")
    return hmac.new(secret.encode(), b"convoy-stream dashboard session", hashlib.sha256).digest()


def _sign(config: ConfigStore, payload: bytes) -> str:
    return _b64(hmac.new(_key(config), payload, hashlib.sha256).digest())


def sign_in(config: ConfigStore, admin_digest: str, token: str) -> tuple[Session, str] | None:
    """A new session and its cookie value for a valid admin token or project API key, else None."""
    token = token.strip()
    nonce = secrets.token_urlsafe(16)
    expires = int(clock.seconds()) + SESSION_SECONDS
    if hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), admin_digest):
        fields: dict[str, Any] = {"a": True, "p": "", "k": "", "d": admin_digest[:_DIGEST_PREFIX]}
    else:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "CO":
            return None
        stored = config.get("apikey", parts[1])
        if not stored or not hmac.compare_digest(stored["digest"], key_digest(parts[2])):
            return None
        fields = {"a": False, "p": stored["project_id"], "k": parts[1], "d": stored["digest"][:_DIGEST_PREFIX]}
    payload = orjson.dumps({**fields, "n": nonce, "e": expires})
    session = Session(admin=bool(fields["a"]), project_id=str(fields["p"]), nonce=nonce, expires=expires)
    return session, f"{_b64(payload)}.{_sign(config, payload)}"


def check(config: ConfigStore, admin_digest: str, cookie: str | None) -> Session | None:
    """The session a cookie proves, if its signature holds, it has not expired and its
    credential still exists; else None."""
    if not cookie or "." not in cookie:
        return None
    encoded, signature = cookie.rsplit(".", 1)
    try:
        payload = _unb64(encoded)
        if not hmac.compare_digest(_sign(config, payload), signature):
            return None
        fields = orjson.loads(payload)
    except (ValueError, LookupError):
        return None
    if int(fields.get("e", 0)) < clock.seconds():
        return None
    if fields.get("a"):
        if not hmac.compare_digest(str(fields.get("d", "")), admin_digest[:_DIGEST_PREFIX]):
            return None
    else:
        stored = config.get("apikey", str(fields.get("k", "")))
        if (not stored or stored.get("project_id") != fields.get("p")
                or not hmac.compare_digest(str(fields.get("d", "")), str(stored.get("digest", ""))[:_DIGEST_PREFIX])):
            return None
    return Session(admin=bool(fields.get("a")), project_id=str(fields.get("p", "")), nonce=str(fields.get("n", "")),
                   expires=int(fields["e"]))


def csrf_token(config: ConfigStore, session: Session) -> str:
    return _b64(hmac.new(_key(config), b"csrf:" + session.nonce.encode(), hashlib.sha256).digest())


def csrf_ok(config: ConfigStore, session: Session, token: str) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(config, session), token)


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_options(base_url: str, max_age: int) -> dict[str, Any]:
    return {"httponly": True, "samesite": "Strict", "path": "/ui", "secure": base_url.startswith("https://"),
            "max_age": max_age}
