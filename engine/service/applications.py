"""What the service tells a calling application: query plans, the vocabulary, the API document.

Routes registered by `install(app, service)` (app.py):

- `POST /plan`: a query plan (engine/plan.py) for a request without its resource;
- `GET /policy/vocabulary`: every name the served set declares (engine/names.py);
- `GET /docs`: Swagger UI, its files served from the `swagger-ui-bundle` package, so
  the page works with no internet access (FastAPI's own page loads them from a CDN).

`openapi(build, service)` wraps the OpenAPI document: `securitySchemes` for
the API key and bearer token, stable operation ids (`decide`, `decideBatch`,
`plan`, ...), and request examples drawn from the served policy set.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from engine import ast
from engine.errors import PolicyError
from engine.names import vocabulary_listing
from engine.service import schemas
from engine.service.bodies import read_json, require_object
from engine.service.errors import ApiError, json_response

# Operation ids clients generate method names from: fixed, whatever the handler is called.
OPERATION_IDS = {
    ("/decide", "post"): "decide",
    ("/decide/batch", "post"): "decideBatch",
    ("/plan", "post"): "plan",
    ("/policy", "get"): "policyInfo",
    ("/policy/vocabulary", "get"): "policyVocabulary",
    ("/policy/reload", "post"): "reloadPolicy",
    ("/healthz", "get"): "health",
    ("/readyz", "get"): "ready",
    ("/metrics", "get"): "metrics",
    ("/bundle/status", "get"): "bundleStatus",
}
SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "an API key named in ENGINE_API_KEYS"},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "an API key (or, for /policy/reload, the admin token) as a bearer token"},
}
_OPEN = {"/healthz", "/readyz", "/metrics", "/bundle/status"}  # answered without a key
_ASSETS = "/docs/assets"


def install(app: FastAPI, service: Any) -> None:
    """Add the application routes and the offline API documentation page."""

    @app.post("/plan", response_model=schemas.Plan, tags=["decisions"], operation_id="plan",
              openapi_extra=schemas.body_doc("PlanRequest"),
              responses=schemas.error_responses(400, 401, 403, 413, 415, 422, 503))
    async def plan(request: Request) -> Response:
        """Which resources this requester may have, for this action and purpose: a request without
        `resource` gives always_allowed, always_denied, or a condition over the resource's fields."""
        try:
            caller = service.keys.caller(request.headers)
            body = require_object(await read_json(request, service.max_body), "a plan request")
            policy = service.current()
            # The same rules as deciding: the service's date, the key's own agencies, bounded text.
            body = service.admission.admit(body, caller, policy, service.admission.today(), service.audit)
            started = time.perf_counter()
            found = policy.plan(body)
        except (ApiError, PolicyError) as err:
            service.metrics.reject(err.code)
            raise
        service.metrics.latency["plan"].observe(time.perf_counter() - started)
        return json_response(found.to_dict())

    @app.get("/policy/vocabulary", response_model=schemas.Vocabulary, tags=["policy"],
             operation_id="policyVocabulary", responses=schemas.error_responses(401, 503))
    async def vocabulary(request: Request) -> Response:
        """Every name the served set declares: roles with labels, agencies and groups, the purpose
        and category trees, classifications in order, attributes, obligations with their arguments."""
        service.keys.caller(request.headers)
        return json_response(vocabulary_listing(service.current()))

    assets = _swagger_assets()
    if assets is not None:
        app.mount(_ASSETS, StaticFiles(directory=assets), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        if assets is None:
            return HTMLResponse("<p>API documentation needs the swagger-ui-bundle package.</p>", 404)
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
                                   swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{_ASSETS}/favicon-32x32.png")


def _swagger_assets() -> Path | None:
    try:
        import swagger_ui_bundle  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a dependency of the package
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def openapi(build: Callable[[], dict[str, Any]], service: Any) -> Callable[[], dict[str, Any]]:
    """The API document with security schemes, operation ids and examples from the served set
    (made again when the served version changes)."""
    made: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        policy = service.holder.policy
        version = policy.version if policy is not None else None
        if made.get("version") != version or "document" not in made:
            made["document"] = _document(copy.deepcopy(build()), policy)
            made["version"] = version
        found: dict[str, Any] = made["document"]
        return found

    return document


def _document(document: dict[str, Any], policy: Any) -> dict[str, Any]:
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            name = OPERATION_IDS.get((path, method))
            if name is not None:
                operation["operationId"] = name
            if path not in _OPEN:
                operation["security"] = [{"apiKey": []}, {"bearer": []}]
    if policy is not None:
        example = example_request(policy)
        partial = {k: v for k, v in example.items() if k != "resource"}
        for path, body in (("/decide", example), ("/decide/batch", {"requests": [example]}), ("/plan", partial)):
            operation = document.get("paths", {}).get(path, {}).get("post")
            if operation is not None and "requestBody" in operation:
                operation["requestBody"]["content"]["application/json"]["example"] = body
    return document


def example_request(policy: Any) -> dict[str, Any]:
    """A request the served set's first permit rule is about: its names, not made-up ones."""
    vocab = policy.vocabulary
    chosen = {"role": vocab.values_of("role")[0], "agency": vocab.values_of("agency")[0],
              "action": vocab.values_of("action")[0], "purpose": vocab.values_of("purpose")[-1],
              "category": vocab.values_of("category")[-1], "owner": vocab.values_of("agency")[0]}
    classification = next(iter(vocab.classifications))
    rule = next((r for r in vocab.rules if r.effect is ast.Effect.PERMIT), None)
    for clause in rule.clauses if rule is not None else ():
        if isinstance(clause, ast.MatchClause) and clause.values and clause.kind.value in chosen:
            name = clause.values[0].text
            if clause.kind.value in ("agency", "owner") and name in vocab.groups:
                name = min(vocab.groups[name])
            chosen[clause.kind.value] = name
        elif isinstance(clause, ast.DataClause) and clause.categories:
            chosen["category"] = clause.categories[0].text
    return {"requester": {"role": chosen["role"], "agency": chosen["agency"]}, "action": chosen["action"],
            "resource": {"category": chosen["category"], "classification": classification,
                         "owner": chosen["owner"]},
            "purpose": chosen["purpose"], "context": {}}
