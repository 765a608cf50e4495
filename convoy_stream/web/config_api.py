"""Management API: projects, endpoints, subscriptions, sources (Convoy v1 paths).

Writes go to the config topic (acks=all) and are visible to this worker
before the answer; see `tables/config.py`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import orjson
from aiohttp import web

from bridges.base import InvalidMessage
from bridges.manager import bridge_workers

from ..clock import timestamp
from ..ids import mask_id, new_api_key, new_ulid
from ..secrets_redaction import ENDPOINT_SECRET_PATHS, SOURCE_SECRET_PATHS, keep_stored_secrets, redact
from .. import netpolicy, transforms
from ..answers.endpoints import endpoint_answer
from ..answers.projects import api_key_answer, project_answer
from ..answers.sources import source_answer
from ..answers.subscriptions import subscription_answer
from ..broker_messages import header_map
from ..validation import (ValidationError, validate_broker_message, validate_endpoint, validate_project, validate_source,
                          validate_subscription)
from .auth import authenticate
from .context import Context, ctx
from .body import read_json
from .envelope import ApiError, ok
from .pagination import paginate


def _validated(fn: Callable[..., dict[str, Any]], body: Any, **kwargs: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    try:
        return fn(body, **kwargs)
    except ValidationError as exc:
        raise ApiError(400, str(exc)) from exc


# -- projects ------------------------------------------------------------------------------

async def create_project(request: web.Request) -> web.Response:
    c = ctx(request)
    c.admin(request)
    fields = _validated(validate_project, await read_json(request))
    stamp = timestamp()
    project = {"uid": new_ulid(), **fields, "organisation_id": "", "created_at": stamp, "updated_at": stamp, "deleted_at": None}
    key, mask, digest = new_api_key()
    await c.config.put("project", project["uid"], project)
    api_key = {"uid": mask, "project_id": project["uid"], "digest": digest, "name": f"{project['name']}'s default key",
               "role": {"type": "project_admin", "project": project["uid"]}, "key_type": "project", "created_at": stamp}
    await c.config.put("apikey", mask, api_key)
    return ok({"project": project_answer(project), "api_key": api_key_answer(api_key, key)},
              "Project created successfully", 201)


async def list_projects(request: web.Request) -> web.Response:
    """Convoy's `GET /projects`: the projects the caller's key may use, oldest first. The admin
    token sees every project; a project key sees its own (convoy-stream has no organisations,
    so Convoy's `orgID` parameter is accepted and not needed)."""
    c = ctx(request)
    c.require_ready()
    caller = authenticate(request, c.config, c.admin_digest)
    projects = c.config.all("project") if caller.admin else filter(None, [c.config.get("project", caller.project_id or "")])
    ordered = sorted(projects, key=lambda p: (p.get("created_at", ""), p["uid"]))
    return ok([project_answer(p) for p in ordered], "Projects fetched successfully")


async def get_project(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    return ok(project_answer(project), "Project fetched successfully")


async def update_project(request: web.Request) -> web.Response:
    c = ctx(request)
    project = await c.project(request)
    fields = _validated(validate_project, await read_json(request), update=True)
    updated = {**project, **fields, "uid": project["uid"], "updated_at": timestamp()}
    await c.config.put("project", project["uid"], updated)
    return ok(project_answer(updated), "Project updated successfully", 202)


async def delete_project(request: web.Request) -> web.Response:
    c = ctx(request)
    project = await c.project(request)
    for kind in ("subscription", "endpoint", "source", "apikey"):
        for entity in c.config.project_entities(kind, project["uid"]):
            await c.config.delete(kind, entity["uid"])
    await c.config.delete("project", project["uid"])
    return ok(None, "Project deleted successfully")


# -- generic project-scoped resources ----------------------------------------------------

class Resource:
    """CRUD for one kind of project-scoped config entity."""

    def __init__(self, kind: str, label: str, secret_paths: tuple[tuple[str, ...], ...] = ()) -> None:
        self.kind = kind
        self.label = label
        self.secret_paths = secret_paths

    # hooks ------------------------------------------------------------------------------
    def validate(self, c: Context, project: dict[str, Any], body: Any, *, current: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def complete(self, c: Context, project: dict[str, Any], entity: dict[str, Any], *, created: bool) -> dict[str, Any]:
        return entity

    def view(self, c: Context, entity: dict[str, Any], *, created: bool = False) -> dict[str, Any]:
        """The entity as Convoy answers it (`answers/`); secrets shown only when `created`."""
        return entity if created else redact(entity, self.secret_paths)

    def matches_query(self, entity: dict[str, Any], query: Any) -> bool:
        return True

    async def cascade_delete(self, c: Context, entity: dict[str, Any]) -> None:
        return None

    async def _validated(self, c: Context, project: dict[str, Any], body: Any, *, current: dict[str, Any] | None) -> dict[str, Any]:
        """`validate`, catching up with other workers' writes once if a referenced entity is missing."""
        try:
            return self.validate(c, project, body, current=current)
        except ApiError as exc:
            if not exc.message.startswith("failed to find"):
                raise
            await c.config.sync()
            return self.validate(c, project, body, current=current)

    # handlers ----------------------------------------------------------------------------
    async def find(self, c: Context, project: dict[str, Any], uid: str) -> dict[str, Any]:
        entity = await c.config.get_synced(self.kind, uid)
        if entity is None or entity.get("project_id") != project["uid"]:
            raise ApiError(404, f"{self.kind} not found")
        return entity

    async def create(self, request: web.Request) -> web.Response:
        c = ctx(request)
        project = await c.project(request)
        fields = await self._validated(c, project, await read_json(request), current=None)
        stamp = timestamp()
        entity = {"uid": new_ulid(), "project_id": project["uid"], **fields, "created_at": stamp, "updated_at": stamp, "deleted_at": None}
        entity = self.complete(c, project, entity, created=True)
        await c.config.put(self.kind, entity["uid"], entity)
        return ok(self.view(c, entity, created=True), f"{self.label} created successfully", 201)

    async def get(self, request: web.Request) -> web.Response:
        c = ctx(request)
        project = await c.project(request)
        entity = await self.find(c, project, request.match_info["uid"])
        return ok(self.view(c, entity), f"{self.label} fetched successfully")

    async def list(self, request: web.Request) -> web.Response:
        c = ctx(request)
        project = await c.project(request)
        items = [self.view(c, e) for e in c.config.project_entities(self.kind, project["uid"]) if self.matches_query(e, request.query)]
        items.sort(key=lambda e: e["uid"], reverse=True)
        return ok(paginate(items, request.query), f"{self.label}s fetched successfully")

    async def update(self, request: web.Request) -> web.Response:
        c = ctx(request)
        project = await c.project(request)
        old = await self.find(c, project, request.match_info["uid"])
        body = await read_json(request)
        if isinstance(body, dict):
            # A client that did GET then PUT sends the redaction marker back: put the stored
            # secret in its place *before* validating, or a validated secret (a Google
            # service account) would fail on the marker.
            body = keep_stored_secrets(body, old, self.secret_paths)
        fields = await self._validated(c, project, body, current=old)
        fields = keep_stored_secrets(fields, old, self.secret_paths)
        entity = self.complete(c, project, {**old, **fields, "uid": old["uid"], "project_id": old["project_id"], "updated_at": timestamp()}, created=False)
        await c.config.put(self.kind, entity["uid"], entity)
        return ok(self.view(c, entity), f"{self.label} updated successfully", 202)

    async def delete(self, request: web.Request) -> web.Response:
        c = ctx(request)
        project = await c.project(request)
        entity = await self.find(c, project, request.match_info["uid"])
        await self.cascade_delete(c, entity)
        await c.config.delete(self.kind, entity["uid"])
        return ok(None, f"{self.label} deleted successfully")

    def install(self, router: web.UrlDispatcher, collection: str) -> None:
        base = f"/api/v1/projects/{{projectID}}/{collection}"
        router.add_post(base, self.create)
        router.add_get(base, self.list)
        router.add_get(base + "/{uid}", self.get)
        router.add_put(base + "/{uid}", self.update)
        router.add_delete(base + "/{uid}", self.delete)


async def _delete_subscriptions(c: Context, subscriptions: list[dict[str, Any]]) -> None:
    for subscription in subscriptions:
        await c.config.delete("subscription", subscription["uid"])


class Endpoints(Resource):
    def __init__(self) -> None:
        super().__init__("endpoint", "Endpoint", ENDPOINT_SECRET_PATHS)

    def view(self, c: Context, entity: dict[str, Any], *, created: bool = False) -> dict[str, Any]:
        return endpoint_answer(entity, show_secret=created)

    def validate(self, c: Context, project: dict[str, Any], body: Any, *, current: dict[str, Any] | None) -> dict[str, Any]:
        fields = _validated(validate_endpoint, body, update=current is not None,
                            project_type=project.get("type", "outgoing"))
        refuse_internal_url(c, fields["url"], "url")
        return fields

    def complete(self, c: Context, project: dict[str, Any], entity: dict[str, Any], *, created: bool) -> dict[str, Any]:
        if not entity.get("secret"):
            entity["secret"] = mask_id(32)
        return entity

    def matches_query(self, entity: dict[str, Any], query: Any) -> bool:
        q = query.get("q", "")
        owner = query.get("ownerId", "")
        return (not q or q.lower() in entity.get("name", "").lower()) and (not owner or entity.get("owner_id") == owner)

    async def cascade_delete(self, c: Context, entity: dict[str, Any]) -> None:
        await _delete_subscriptions(c, c.config.subscriptions_for_endpoint(entity["uid"]))


class Subscriptions(Resource):
    def __init__(self) -> None:
        super().__init__("subscription", "Subscription")

    def view(self, c: Context, entity: dict[str, Any], *, created: bool = False) -> dict[str, Any]:
        return subscription_answer(entity, c.config)

    def validate(self, c: Context, project: dict[str, Any], body: Any, *, current: dict[str, Any] | None) -> dict[str, Any]:
        fields = _validated(validate_subscription, body, project_type=project.get("type", "outgoing"), update=current is not None)
        endpoint_id = fields.get("endpoint_id")
        if endpoint_id and c.config.endpoint(project["uid"], endpoint_id) is None:
            raise ApiError(400, "failed to find endpoint")
        source_id = fields.get("source_id")
        if source_id:
            source = c.config.get("source", source_id)
            if source is None or source.get("project_id") != project["uid"]:
                raise ApiError(400, "failed to find source")
        return fields

    def matches_query(self, entity: dict[str, Any], query: Any) -> bool:
        endpoints = query.getall("endpointId", []) if hasattr(query, "getall") else []
        return not endpoints or entity.get("endpoint_id") in endpoints


class Sources(Resource):
    def __init__(self) -> None:
        super().__init__("source", "Source", SOURCE_SECRET_PATHS)

    def view(self, c: Context, entity: dict[str, Any], *, created: bool = False) -> dict[str, Any]:
        return source_answer(entity, show_secrets=created)

    def validate(self, c: Context, project: dict[str, Any], body: Any, *, current: dict[str, Any] | None) -> dict[str, Any]:
        fields = _validated(validate_source, body, update=current is not None, current=current,
                            max_workers=c.settings.max_source_workers)
        pub_sub = fields.get("pub_sub")
        problem = netpolicy.pub_sub_problem(pub_sub, allow_private=c.settings.allow_private_networks)
        if problem:
            raise ApiError(400, problem)
        if pub_sub:
            _check_instance_workers(c, current["uid"] if current else None, int(pub_sub.get("workers") or 1))
        return fields

    async def _validated(self, c: Context, project: dict[str, Any], body: Any, *, current: dict[str, Any] | None) -> dict[str, Any]:
        """A transform that cannot run is refused here, not discovered message by message."""
        fields = await super()._validated(c, project, body, current=current)
        for key in ("body_function", "header_function"):
            if fields.get(key):
                try:
                    await transforms.in_script_pool(project["uid"], partial(transforms.check, fields[key], project["uid"]))
                except transforms.TransformError as exc:
                    raise ApiError(400, f"{key}: {exc}") from exc
        return fields

    def complete(self, c: Context, project: dict[str, Any], entity: dict[str, Any], *, created: bool) -> dict[str, Any]:
        if created:
            entity["mask_id"] = mask_id(16)
            entity.setdefault("is_disabled", False)
            if entity.get("provider") == "twitter":
                entity.setdefault("provider_config", {"twitter": {"crc_verified_at": None}})
        entity["url"] = f"{c.settings.base_url}/ingest/{entity['mask_id']}" if entity.get("type") == "http" else ""
        return entity

    def matches_query(self, entity: dict[str, Any], query: Any) -> bool:
        q, kind, provider = query.get("q", ""), query.get("type", ""), query.get("provider", "")
        return ((not q or q.lower() in entity.get("name", "").lower())
                and (not kind or entity.get("type") == kind)
                and (not provider or entity.get("provider") == provider))

    async def cascade_delete(self, c: Context, entity: dict[str, Any]) -> None:
        await _delete_subscriptions(c, c.config.subscriptions_for_source(entity["uid"]))


def refuse_internal_url(c: Context, url: str, field: str) -> None:
    """400 for a URL into the instance's own network, unless the instance allows it (`netpolicy`)."""
    if netpolicy.url_problem(url, allow_private=c.settings.allow_private_networks):
        raise ApiError(400, f"{field}:{netpolicy.REFUSED}")


def _check_instance_workers(c: Context, uid: str | None, workers: int) -> None:
    """400 when this source's bridge workers would take the instance over its limit."""
    limit = c.settings.max_bridge_workers
    per_source = c.settings.max_source_workers  # what a source stored before the limits runs
    others = sum(min(bridge_workers(s), per_source) for s in c.config.all("source") if s.get("uid") != uid)
    if others + workers > limit:
        raise ApiError(400, f"workers:this instance's limit of {limit} bridge workers for all sources is reached")


async def test_function(request: web.Request) -> web.Response:
    """Run a source transform on a sample payload, as Convoy's `POST /sources/test_function`.

    A body function's result must be a valid broker message, a header function's an
    object of strings: the same checks a bridge applies to every message.
    """
    project_id = (await ctx(request).project(request))["uid"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    script, kind, payload = body.get("function"), body.get("type"), body.get("payload")
    if not isinstance(script, str) or not script.strip():
        raise ApiError(400, "function:please provide a function")
    if kind not in ("body", "header"):
        raise ApiError(400, "type:type must be body or header")
    if not isinstance(payload, dict):
        raise ApiError(400, "payload:please provide a payload object")
    try:
        out, log = await transforms.in_script_pool(project_id, partial(transforms.try_once, script, payload, project_id))
    except transforms.TransformError as exc:
        raise ApiError(400, str(exc)) from exc
    try:
        if kind == "body":
            validate_broker_message(orjson.dumps(out))
        else:
            header_map(out)
    except InvalidMessage as exc:
        raise ApiError(400, exc.reason) from exc
    return ok({"payload": out, "log": log}, "Transformer function run successfully")


def install(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/projects", create_project)
    router.add_get("/api/v1/projects", list_projects)
    router.add_get("/api/v1/projects/{projectID}", get_project)
    router.add_put("/api/v1/projects/{projectID}", update_project)
    router.add_delete("/api/v1/projects/{projectID}", delete_project)
    Endpoints().install(router, "endpoints")
    Subscriptions().install(router, "subscriptions")
    Sources().install(router, "sources")
    router.add_post("/api/v1/projects/{projectID}/sources/test_function", test_function)
