"""`GET /parallel/health`: which version is loaded and which features are active."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict


class Feature(BaseModel):
    """One switchable feature: on or off, and a word on how it is provided."""

    model_config = ConfigDict(frozen=True)

    enabled: bool
    detail: str = ""


class Health(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "parallel-runs"
    version: str
    features: dict[str, Feature]


def health_routes(health: Health) -> web.RouteTableDef:
    """Routes for the health report; `health` is fixed once the package is installed."""
    routes = web.RouteTableDef()

    @routes.get("/parallel/health")
    async def get_health(_request: web.Request) -> web.Response:
        return web.json_response(health.model_dump())

    return routes
