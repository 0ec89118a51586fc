"""The API's routes, one module per resource; ``router`` holds them all, in the order the
OpenAPI document lists them."""

from fastapi import APIRouter

from recsvc.api.routes import admin, events, items, models, ops, recommendations
from recsvc.api.routes.deps import JSONBytes

router = APIRouter()
for _module in (recommendations, admin, events, items, models, ops):
    router.include_router(_module.router)

__all__ = ["JSONBytes", "router"]
