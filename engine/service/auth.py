"""Who is calling: API keys for deciders, a bearer token for the reload endpoint.

Secrets are compared with hmac.compare_digest, and every configured key is
compared on every call, so the time taken does not say which key came close.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from starlette.datastructures import Headers

from engine.service.errors import ApiError

ANONYMOUS = None  # the caller recorded when no API keys are configured


def parse_api_keys(text: str | None) -> dict[str, str]:
    """`"name=key,name2=key2"` -> {name: key}; a malformed pair raises ValueError."""
    keys: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, key = item.partition("=")
        name, key = name.strip(), key.strip()
        if not sep or not name or not key:
            raise ValueError(f"API key entry {name or item!r} is not of the form name=key")
        if name in keys:
            raise ValueError(f"API key name {name!r} is given twice")
        keys[name] = key
    return keys


def presented_secret(headers: Headers) -> str | None:
    """The secret in `Authorization: Bearer ...` or `X-API-Key`, if any."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, location={"in": "header", "name": "authorization"},
                    headers={"WWW-Authenticate": "Bearer"})


class ApiKeys:
    """The configured callers; with none configured, deciding is open to all."""

    def __init__(self, keys: Mapping[str, str] | None = None):
        self._keys = [(name, key.encode()) for name, key in (keys or {}).items()]

    @property
    def required(self) -> bool:
        return bool(self._keys)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._keys]

    def caller(self, headers: Headers) -> str | None:
        """The name of the caller whose key was presented; ApiError 401 otherwise."""
        if not self._keys:
            return ANONYMOUS
        secret = presented_secret(headers)
        if secret is None:
            raise _unauthorized("an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>")
        given = secret.encode()
        found = None
        for name, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = name
        if found is None:
            raise _unauthorized("the API key is not recognised")
        return found


def check_admin(headers: Headers, token: str | None, path: str = "/policy/reload") -> None:
    """Allow the reload endpoint (or another admin `path`) only to the holder of the admin token."""
    what = "reload endpoint" if path == "/policy/reload" else path
    if not token:
        raise ApiError(403, "reload_disabled" if path == "/policy/reload" else "admin_disabled",
                       f"{what} is off: set ENGINE_ADMIN_TOKEN to turn it on",
                       location={"in": "path", "path": path})
    authorization = headers.get("authorization", "")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _unauthorized(f"the {what} needs Authorization: Bearer <admin token>")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(403, "forbidden", "the admin token is not correct",
                       location={"in": "header", "name": "authorization"})
