"""`GET /_internal/query/{name}`: another worker's question, answered from this worker's partitions.

Only workers of the deployment may ask (the cluster secret, `cluster.py`, compared in
constant time); the questions and who asks whom are `tables/queries.py`.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from tables import queries

from ..cluster import HEADER, cluster_secret
from .context import ctx
from .envelope import ApiError, json_response


async def internal_query(request: web.Request) -> web.Response:
    c = ctx(request)
    secret = cluster_secret(c.config)
    if not secret or not hmac.compare_digest(request.headers.get(HEADER, ""), secret):
        raise ApiError(401, "authorization failed")
    if c.app.event_tables is None:  # an API process (`api_role.py`) holds no partitions to answer from
        raise ApiError(404, "this process holds no tables")
    try:
        result = queries.answer_locally(c.app, request.match_info["name"], request.query.get("project", ""),
                                        request.query.get("key", ""))
    except queries.UnknownQuery:
        raise ApiError(404, "unknown query") from None
    return json_response({"result": result})
