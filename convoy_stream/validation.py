"""Request validation for the config and event APIs, with Convoy's messages.

Each ``validate_*`` function takes a decoded JSON body and returns a *normalised* dict
(defaults filled, unknown fields dropped, names and enums canonicalised) or raises
:class:`ValidationError`. The web layer answers 400 ``{"status":false,"message":...}``.
The rules live in one module per entity under `convoy_stream.shapes` (each entity's
fields declared once, in a field table that also generates the OpenAPI request schemas),
a `pub_sub` source's broker config in `convoy_stream.broker_config` and a broker
message's rules in `convoy_stream.broker_messages`; this module names them in one place.

Message shape follows Convoy's ``util.Validate``: failures of plain field rules are
``"<json_field>:<message>"``, every failing field is reported, joined by ``", "`` in the
order the fields are declared in Convoy's model (Convoy ranged over a map, so its order
was random). Cross-field checks that run afterwards (``hmac secret is required for
github source``, ``please provide an endpoint ID`` ...) are bare messages. A field with
the wrong JSON type is rejected first, as Go's decoder would:
``body contains incorrect JSON type for field "verifier.hmac.secret"``.

Where Convoy's model has no message of its own we use govalidator's default text
(``non zero value required``) or a clear one, noted at the field.

Update semantics (``update=True``): Convoy treats an absent/``null`` optional field as
"leave unchanged", so the normalised dict then only carries the optional fields that
were sent, and the caller merges it over the stored entity. Required fields stay
required, and for sources the verifier is always replaced (as in Convoy).

Broker messages (docs/convoy-behaviour.md#broker-message) are validated by :func:`validate_broker_message` and
:func:`message_type`, which raise :class:`InvalidMessage` - a message that can never be
valid, which the bridge dead-letters with its reason (docs/decisions.md#decision-12).
"""

from __future__ import annotations

from bridges.base import InvalidMessage

from .broker_config import MAX_SOURCE_WORKERS, PUB_SUB_TYPES, validate_pub_sub
from .broker_messages import (MESSAGE_TYPE_HEADER, MESSAGE_TYPES, merge_broker_headers, message_type,
                              validate_broker_message)
from .limits import MAX_CUSTOM_RESPONSE_SIZE
from .shapes.endpoints import ENDPOINT_STATUSES, validate_endpoint
from .shapes.events import EVENT_KINDS, validate_event
from .shapes.fields import REQUIRED, ValidationError
from .shapes.json_body import decode_json_body
from .shapes.projects import DEFAULT_PROJECT_CONFIG, PROJECT_TYPES, validate_project
from .shapes.sources import SOURCE_TYPES, validate_source
from .shapes.subscriptions import validate_subscription
from .verifiers.base import ENCODINGS, HASH_ALGORITHMS
from .verifiers.factory import PROVIDERS, VERIFIER_TYPES

__all__ = [
    "DEFAULT_PROJECT_CONFIG",
    "ENCODINGS",
    "ENDPOINT_STATUSES",
    "EVENT_KINDS",
    "HASH_ALGORITHMS",
    "InvalidMessage",
    "MAX_CUSTOM_RESPONSE_SIZE",
    "MAX_SOURCE_WORKERS",
    "MESSAGE_TYPE_HEADER",
    "MESSAGE_TYPES",
    "PROJECT_TYPES",
    "PROVIDERS",
    "PUB_SUB_TYPES",
    "REQUIRED",
    "SOURCE_TYPES",
    "ValidationError",
    "VERIFIER_TYPES",
    "decode_json_body",
    "merge_broker_headers",
    "message_type",
    "validate_broker_message",
    "validate_endpoint",
    "validate_event",
    "validate_project",
    "validate_pub_sub",
    "validate_source",
    "validate_subscription",
]
