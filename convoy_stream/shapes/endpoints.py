"""An endpoint's create and update bodies (Convoy ``api/models/endpoint.go``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..limits import is_header_value
from .fields import (API_KEY, INVALID_URL, NULLABLE, REQUIRED, URL_SCHEMA, Field, FieldErrors, Shape,
                     ValidationError, as_object, check_header_name, is_http_url, opt_bool, opt_int, opt_object,
                     opt_str, required_strings, text)

ENDPOINT_STATUSES = ("active", "inactive", "paused")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

AUTHENTICATION = Shape((
    Field("type", enum=("api_key",), enum_message="unsupported authentication type"),
    Field("api_key", "object", required=REQUIRED, shape=API_KEY),
), nullable=True)
ENDPOINT = Shape((
    Field("url", required="please provide a url for your endpoint", blank_is_missing=True, extra=URL_SCHEMA),
    Field("name", required="please provide your endpointName", blank_is_missing=True),
    # "" means none, as the validator reads it.
    Field("support_email", extra={"pattern": rf"^({_EMAIL.pattern})?$", "nullable": True}),
    Field("secret", extra=NULLABLE),
    Field("owner_id", extra=NULLABLE),
    Field("description", extra=NULLABLE),
    Field("status", enum=ENDPOINT_STATUSES, enum_message="please provide a valid endpoint status"),
    Field("is_disabled", "boolean"),
    Field("advanced_signatures", "boolean"),
    Field("slack_webhook_url", extra=NULLABLE),
    Field("http_timeout", "integer", minimum=1, bound_message="please provide a valid http timeout", extra=NULLABLE),
    Field("rate_limit", "integer", minimum=0, bound_message="please provide a valid rate limit", extra=NULLABLE),
    Field("rate_limit_duration", "integer", minimum=0, bound_message="please provide a valid rate limit duration",
          extra=NULLABLE),
    Field("authentication", "object", shape=AUTHENTICATION),
))


def validate_endpoint(body: Any, *, update: bool = False, project_type: str = "outgoing") -> dict[str, Any]:
    """Validate an endpoint create/update body.

    Returns ``{name, url, secret, owner_id, description, status, advanced_signatures,
    support_email, slack_webhook_url, http_timeout, rate_limit, rate_limit_duration,
    authentication}``. ``url`` must be http(s) with a host. ``status`` is one of
    ``active|inactive|paused`` (default ``active``; Convoy's older ``is_disabled: true``
    is read as ``inactive``). ``secret`` ``None`` means "generate one". Numeric limits
    ``None`` mean "use the project default".

    ``advanced_signatures`` is Convoy's (``services/create_endpoint.go``,
    ``update_endpoint.go``): ``true`` when left out of a create body; in an ``incoming``
    project always ``true`` on create and never changed by an update.
    """
    obj = as_object(body)
    url = text(obj, "url")
    name = text(obj, "name")
    email = text(obj, "support_email")
    errors = FieldErrors()
    errors.check(ENDPOINT["url"], url)
    errors.check(ENDPOINT["name"], name)
    if email and not _EMAIL.fullmatch(email):
        errors.add("support_email", "please provide a valid email")
    errors.raise_if_any()
    if not is_http_url(url):
        raise ValidationError(f"url:{INVALID_URL}")

    result: dict[str, Any] = {"name": name.strip(), "url": url.strip()}
    present = (lambda key: obj.get(key) is not None) if update else (lambda key: True)

    status = opt_str(obj, "status")
    if status is not None and status not in ENDPOINT["status"].enum:
        raise ValidationError(f"status:{ENDPOINT['status'].enum_message}")
    if status is None and opt_bool(obj, "is_disabled"):
        status = "inactive"
    if status is not None or not update:
        result["status"] = status or "active"

    for key in ("secret", "owner_id", "description", "slack_webhook_url"):
        if present(key):
            result[key] = opt_str(obj, key) or None
    if present("support_email"):
        result["support_email"] = email or None
    advanced = opt_bool(obj, "advanced_signatures")
    if project_type == "incoming":
        if not update:
            result["advanced_signatures"] = True
    elif advanced is not None or not update:
        result["advanced_signatures"] = True if advanced is None else advanced
    for key in ("http_timeout", "rate_limit", "rate_limit_duration"):
        if present(key):
            value = opt_int(obj, key)
            errors.check(ENDPOINT[key], value)
            errors.raise_if_any()
            result[key] = value
    if present("authentication"):
        result["authentication"] = _validate_endpoint_auth(obj)
    return result


def _validate_endpoint_auth(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    auth = opt_object(obj, "authentication")
    if auth is None:
        return None
    auth_type = text(auth, "type", "authentication") or "api_key"
    if auth_type not in AUTHENTICATION["type"].enum:
        raise ValidationError(f"type:{AUTHENTICATION['type'].enum_message}")
    api_key = opt_object(auth, "api_key", "authentication")
    if api_key is None:
        raise ValidationError(f"api_key:{AUTHENTICATION['api_key'].required}")
    values = required_strings(api_key, API_KEY, "authentication.api_key")
    check_header_name(values["header_name"], "header_name")
    if not is_header_value(values["header_value"]):
        raise ValidationError("header_value:please provide a valid header value")
    return {"type": "api_key",
            "api_key": {"header_name": values["header_name"], "header_value": values["header_value"]}}
