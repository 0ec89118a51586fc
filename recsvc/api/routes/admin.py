"""The admin API (``RECSVC_ADMIN_TOKEN``): stock, catalog, erasure, the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recsvc import model as lay
from recsvc.api.routes.deps import (
    JSONBytes,
    actor_of,
    errors_doc,
    require_token,
    settings_of,
    store_of,
)
from recsvc.api.schemas import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_ITEM_ID_LENGTH,
    AdminItemResponse,
    AdminStockResponse,
    AuditResponse,
    CatalogItem,
    CatalogRequest,
    CatalogResponse,
    DeletedResponse,
    ErasedResponse,
    StockChange,
    StockRequest,
)
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.errors import BadRequestError, UnknownItemError

router = APIRouter(route_class=StrictJSONRoute)


_BEARER = HTTPBearer(auto_error=False, description="RECSVC_ADMIN_TOKEN")
"""Declares the admin routes' bearer scheme in OpenAPI; ``require_admin`` checks it."""


def require_admin(request: Request) -> None:
    """The admin bearer token from settings, compared in constant time."""
    require_token(request, settings_of(request).admin_token, "admin", "RECSVC_ADMIN_TOKEN")


@router.patch(
    "/v1/admin/items/{item_id}",
    response_class=JSONBytes,
    responses={200: {"model": AdminItemResponse}, **errors_doc(400, 401, 403, 404, 413, 422, 503)},
    summary="Mark one item (un)available or reprice it, until the next training",
)
async def admin_item(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    body: StockChange,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    version, unknown = await store_of(request).admin.set_stock(
        {item_id: body.model_dump(exclude_none=True)}
    )
    if unknown:
        raise UnknownItemError(f"item {item_id!r} is not in the live model")
    return JSONBytes({"model_version": version, "updated": [item_id]})


@router.post(
    "/v1/admin/stock",
    response_class=JSONBytes,
    responses={200: {"model": AdminStockResponse}, **errors_doc(400, 401, 403, 413, 422, 503)},
    summary="Availability and prices of many items at once, until the next training",
)
async def admin_stock(
    body: StockRequest,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    changes = {
        line.item_id: line.model_dump(exclude_none=True, exclude={"item_id"}) for line in body.items
    }
    version, unknown = await store_of(request).admin.set_stock(changes)
    updated = len(changes) - len(unknown)
    return JSONBytes({"model_version": version, "updated": updated, "unknown": unknown})


def _catalog_answer(version: str, ids: list[str], new: list[str]) -> JSONBytes:
    return JSONBytes({"model_version": version, "updated": ids, "new": new})


@router.put(
    "/v1/admin/catalog/items/{item_id}",
    response_class=JSONBytes,
    responses={200: {"model": CatalogResponse}, **errors_doc(400, 401, 403, 413, 422, 503)},
    summary="Add an item to the catalog, or change its facts, before the next training",
)
async def admin_put_item(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    body: CatalogItem,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    facts = {item_id: body.model_dump(exclude_none=True)}
    version, new = await store_of(request).admin.put_items(facts, actor_of(request))
    return _catalog_answer(version, [item_id], new)


@router.post(
    "/v1/admin/catalog",
    response_class=JSONBytes,
    responses={200: {"model": CatalogResponse}, **errors_doc(400, 401, 403, 413, 422, 503)},
    summary="Add or change many catalog items at once, before the next training",
)
async def admin_put_items(
    body: CatalogRequest,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    facts = {
        line.item_id: line.model_dump(exclude_none=True, exclude={"item_id"}) for line in body.items
    }
    version, new = await store_of(request).admin.put_items(facts, actor_of(request))
    return _catalog_answer(version, list(facts), new)


@router.delete(
    "/v1/admin/catalog/items/{item_id}",
    response_class=JSONBytes,
    responses={200: {"model": DeletedResponse}, **errors_doc(400, 401, 403, 422, 503)},
    summary="Delete an item: never suggested again until it is put back (audited)",
)
async def admin_delete_item(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    version = await store_of(request).admin.delete_items([item_id], actor_of(request))
    return JSONBytes({"model_version": version, "deleted": [item_id]})


@router.delete(
    "/v1/admin/customers/{customer_id}",
    response_class=JSONBytes,
    responses={200: {"model": ErasedResponse}, **errors_doc(400, 401, 403, 422, 503)},
    summary="Erase a customer's stored history from every version, for a privacy request "
    "(audited; no later training stores it again)",
)
async def admin_erase_customer(
    customer_id: Annotated[
        str, Path(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    versions = await store_of(request).admin.erase_customers([customer_id], actor_of(request))
    return JSONBytes({"erased": [customer_id], "versions": versions})


@router.get(
    "/v1/admin/audit",
    response_class=JSONBytes,
    responses={200: {"model": AuditResponse}, **errors_doc(400, 401, 403, 422, 503)},
    summary="The latest catalog changes and erasures, newest first",
)
async def admin_audit(
    request: Request,
    count: Annotated[int, Query(ge=1, le=1000)] = 100,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    require_admin(request)
    unknown = set(request.query_params) - {"count"}
    if unknown:
        raise BadRequestError(f"unknown query parameters: {', '.join(sorted(unknown))}")
    return JSONBytes({"entries": await store_of(request).admin.audit_log(count)})
