"""The fast path answers exactly as the FastAPI route does: same status, headers and body, for every outcome."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response

from engine.service.bodies import read_json, require_object
from engine.service.errors import ApiError, install_handlers, json_response
from engine.service.fastpath import FastPath


def _app(fast: bool) -> FastAPI:
    app = FastAPI()
    install_handlers(app)

    @app.post("/decide")
    async def decide(request: Request) -> Response:
        body = require_object(await read_json(request, 1024), "a decision request")
        if body.get("fail") == "api":
            raise ApiError(503, "unavailable", "try again", location={"in": "server"})
        if body.get("fail") == "bug":
            raise RuntimeError("a bug")
        return json_response({"decision": "permit", "echo": body})

    if fast:
        app.add_middleware(FastPath, owner=app, routes={"/decide": decide})
    return app


def _answer(app: FastAPI, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, list, bytes]:
    client = TestClient(app, raise_server_exceptions=False)
    response = client.request(method, "/decide", content=body, headers=headers)
    kept = sorted((k, v) for k, v in response.headers.items() if k not in ("date", "server"))
    return response.status_code, kept, response.content


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(("method", "body", "headers"), [
    ("POST", b'{"requester": {"id": "a"}}', JSON),          # decided
    ("POST", b'{"requester": ', JSON),                       # not JSON
    ("POST", b"[1, 2]", JSON),                               # not an object
    ("POST", b"{}", {"content-type": "text/plain"}),        # wrong media type
    ("POST", b"x" * 5000, JSON),                             # too large
    ("POST", b'{"fail": "api"}', JSON),                      # the endpoint's own error
    ("POST", b'{"fail": "bug"}', JSON),                      # an unexpected exception: 500, the one error shape
    ("GET", b"", {}),                                        # not the fast path's method: routed as ever
])
def test_the_fast_path_answers_as_the_route_does(method: str, body: bytes, headers: dict[str, str]) -> None:
    assert _answer(_app(True), method, body, headers) == _answer(_app(False), method, body, headers)


def test_the_route_stays_in_the_openapi_document() -> None:
    assert "/decide" in _app(True).openapi()["paths"]


def test_the_applications_own_middleware_still_runs_around_the_fast_path() -> None:
    app = _app(True)
    app.add_middleware(GZipMiddleware, minimum_size=1)
    response = TestClient(app).post("/decide", content=b'{"a": "' + b"x" * 500 + b'"}',
                                    headers=JSON | {"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


def test_the_fast_path_is_the_one_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []
    answer = FastPath._answer

    async def spy(self: FastPath, *args: object) -> None:
        taken.append(True)
        await answer(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FastPath, "_answer", spy)
    assert TestClient(_app(True)).post("/decide", content=b"{}", headers=JSON).status_code == 200
    assert taken == [True]
