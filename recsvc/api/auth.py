"""Bearer tokens of the admin and order-event APIs, checked before a body is read.

``TokenGuard`` sits in front of the routes: a request to a guarded path prefix without
its valid token is answered 401 (403 while that API is disabled) before anything reads,
parses or validates its body, so an unauthenticated caller learns nothing of the schema
and costs the service no JSON parsing. The routes check the same tokens again
(``require``), so a route never depends on where the guard is mounted.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from recsvc.errors import ForbiddenError, RecsvcError, UnauthorizedError


@dataclass(frozen=True)
class Guarded:
    """One API behind a token: the token (None: disabled), its name and its setting."""

    token: SecretStr | None
    api: str
    setting: str


def require(authorization: str | None, guarded: Guarded) -> None:
    """Raises unless ``authorization`` (the header's value) carries the token, compared
    in constant time; a disabled API refuses every caller."""
    token = guarded.token
    if token is None or not token.get_secret_value().strip():
        raise ForbiddenError(
            f"the {guarded.api} API is disabled: set {guarded.setting} to enable it"
        )
    scheme, _, value = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected):
        raise UnauthorizedError("a valid bearer token is required")


class TokenGuard:
    """ASGI middleware: each guarded path prefix's token, checked on every method but
    ``OPTIONS`` (which carries no body and answers only which methods a path has)."""

    def __init__(
        self,
        app: ASGIApp,
        prefixes: Mapping[str, Guarded],
        refuse: Callable[[RecsvcError], ASGIApp],
    ) -> None:
        self.app, self.prefixes, self.refuse = app, dict(prefixes), refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] != "OPTIONS":
            path: str = scope["path"]
            for prefix, guarded in self.prefixes.items():
                if path.startswith(prefix):
                    authorization = None
                    for name, value in scope["headers"]:
                        if name == b"authorization":
                            authorization = value.decode("latin-1")
                            break
                    try:
                        require(authorization, guarded)
                    except RecsvcError as exc:
                        await self.refuse(exc)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
