"""`/openapi.json` describes exactly the routes the worker serves.

The routes are collected from a real aiohttp router filled by
`routes.add_routes`, the same function the worker uses, so adding a route
without documenting it (or documenting one that does not exist) fails here.
"""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from convoy_stream.web import openapi, ratelimit, routes

INTERNAL = "/_internal/"
DASHBOARD = "/ui"  # HTML pages, not the API
UNAUTHENTICATED = {"/health", "/openapi.json", "/ingest/{maskID}"}


def registered() -> set[tuple[str, str]]:
    app = web.Application()
    routes.add_routes(app.router)
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path.startswith(INTERNAL) or path.startswith(DASHBOARD):  # HEAD is added by aiohttp for every GET
            continue
        found.add((route.method, path))
    return found


def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, methods in openapi.document()["paths"].items() for method in methods}


def test_every_registered_route_is_documented_and_nothing_else() -> None:
    served, described = registered(), documented()
    assert served - described == set(), "routes without an OpenAPI operation"
    assert described - served == set(), "documented operations no route serves"


def test_the_internal_routes_stay_undocumented() -> None:
    assert not [path for _, path in documented() if path.startswith(INTERNAL)]


def test_document_is_valid_openapi_3() -> None:
    validate(openapi.document())


def test_path_parameters_match_the_route_templates() -> None:
    for path, methods in openapi.document()["paths"].items():
        in_path = set(re.findall(r"{(\w+)}", path))
        for method, operation in methods.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (method, path)


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for methods in openapi.document()["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids)) and all(ids)


def test_only_health_openapi_and_ingest_are_documented_without_credentials() -> None:
    doc = openapi.document()
    open_paths = {path for path, methods in doc["paths"].items() for operation in methods.values()
                  if operation.get("security", doc["security"]) == []}
    assert open_paths == UNAUTHENTICATED


@pytest.mark.parametrize("method,path", sorted(ratelimit.LIMITED_ROUTES))
def test_rate_limited_routes_exist(method: str, path: str) -> None:
    assert (method, path) in registered()


def test_every_json_answer_uses_the_envelope() -> None:
    """Except this document itself and the X/Twitter CRC answer, whose shape Twitter dictates."""
    doc = openapi.document()
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            if path == "/openapi.json" or (method, path) == ("get", "/ingest/{maskID}"):
                continue
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is None:
                    continue
                if status.startswith("2"):
                    props = schema.get("properties", {})
                    assert {"status", "message", "data"} <= set(props), (method, path, status)
                else:
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
