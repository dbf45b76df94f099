"""What the service shows a caller who has not said who they are.

With API keys configured, `GET /policy`, the OpenAPI document and the docs
pages need a valid key (the applications that call the service read them),
and `/metrics` needs the admin token: operators' figures are not for callers.
Without API keys everything stays open, as deciding is.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from engine.service.auth import ApiKeys, check_admin
from engine.service.errors import ApiError
from engine.service.limits import ASGIApp, Receive, Scope, Send, send_error

KEYED = frozenset({"/policy", "/policy/vocabulary", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
ADMIN = frozenset({"/metrics"})


class Exposure:
    """ASGI middleware asking for a key (or the admin token) before the pages above."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, admin_token: str | None):
        self.app = app
        self.keys = keys
        self.admin_token = admin_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keys.required:
            path = scope["path"][len(scope.get("root_path", "")):] if scope.get("root_path") else scope["path"]
            try:
                if path in KEYED:
                    self.keys.caller(Headers(scope=scope))
                elif path in ADMIN:
                    check_admin(Headers(scope=scope), self.admin_token, "/metrics")
            except ApiError as err:
                await send_error(send, err)
                return
        await self.app(scope, receive, send)
