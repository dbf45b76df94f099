"""The decision service: a FastAPI app over one hot-swappable Policy.

`create_app()` builds it; `app_from_env()` is the factory uvicorn imports in
each worker process when serving with `--workers N`, configured through the
environment (ENGINE_POLICY_PATH, ENGINE_WATCH, ENGINE_ADMIN_TOKEN,
ENGINE_API_KEYS, ENGINE_AUDIT_LOG, ENGINE_MAX_BODY_BYTES, and for bundles
ENGINE_BUNDLE_* and ENGINE_REQUIRE_*: engine/service/bundles.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.responses import PlainTextResponse, Response

from engine.errors import PolicyLoadError, RequestError
from engine.policy import load
from engine.portal.app import add_portal
from engine.service import applications, schemas
from engine.service.admission import Admission
from engine.service.audit import AuditLog, AuditSettings, AuditUnavailable, EntryError
from engine.service.audit.policies import policy_document
from engine.service.audit.query import Filters, query
from engine.service.auth import ApiKeys, check_admin, parse_api_keys
from engine.service.bodies import DEFAULT_MAX_BODY, read_json, read_limited, require_object
from engine.service.bundles import BundlePoller, FleetSettings, add_bundle_routes, check_revision, unready_reason
from engine.service.dated import DatedWarnings
from engine.service.deciding import Deciding
from engine.service.encoding import DecisionEncoder
from engine.service.errors import ApiError, install_handlers, json_response, load_error_body
from engine.service.exposure import Exposure
from engine.service.fastpath import DecideLane, ServiceApp
from engine.service.limits import TextGuard
from engine.service.logs import log_like_uvicorn
from engine.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from engine.service.metrics import Metrics
from engine.service.reloading import PolicyHolder, ReloadSignal
from engine.service.supervision import watch_supervisor
from engine.service.telemetry import Telemetry

log = logging.getLogger("engine.api")

# A batch is decided on the event loop in slices of this many requests, letting
# other requests in between. (A worker thread would do the same under the GIL,
# but the handing back and forth of the GIL costs more than the deciding.)
_SLICE = 100


class Service:
    """Everything a request handler needs, built once per app."""

    def __init__(self, holder: PolicyHolder, *, keys: ApiKeys, admin_token: str | None,
                 audit: AuditLog | None, telemetry: Telemetry, max_body: int, watch: bool,
                 reload_signal: ReloadSignal | None = None, fleet: FleetSettings | None = None,
                 bundles: BundlePoller | None = None, admission: Admission | None = None):
        self.holder = holder
        self.fleet = fleet if fleet is not None else FleetSettings()
        self.bundles = bundles
        self.admission = admission or Admission()
        self.started = False  # set by the lifespan
        self.dated = DatedWarnings()
        self.reload_signal = reload_signal
        self.keys = keys
        self.admin_token = admin_token
        self.audit = audit
        self.telemetry = telemetry
        self.max_body = max_body
        self.watch = watch
        self.metrics = Metrics()
        self.encoder = DecisionEncoder()

    def current(self, headers: Mapping[str, str] | None = None) -> Any:
        """The Policy to decide with; read once per request. With the request's headers, a
        revision the caller requires (X-Policy-Revision) that is not this one is a 409."""
        policy = self.holder.policy
        if policy is None:
            hint = "" if self.started else (": the service was never started; mounted in another app, "
                                             "mount it with engine.service.mount() so its lifespan runs")
            raise ApiError(503, "not_ready", "no policy set is loaded yet" + hint, location={"in": "server"})
        if headers is not None:
            check_revision(policy, headers)
        return policy

    async def audited(self, policy: Any, caller: str | None, requests: list[Any], decisions: list[Any],
                      batch: bool = False) -> None:
        """Write the decisions' entries before they are answered: 503 audit_unavailable if they cannot be."""
        audit = self.audit
        if audit is None:
            return
        if not audit.knows_policy(policy.version):
            # Kept once per version, for `engine audit explain`; a set served from a bundle is not on disk.
            document = policy_document(self.holder.path, policy.version)
            audit.remember_policy(policy.version, document)
        try:
            if batch:
                await audit.commit_many(caller, requests, decisions)
            else:
                await audit.commit(caller, requests[0], decisions[0])
        except AuditUnavailable as err:
            if audit.keep_deciding:  # the operator chose answers over the trail: counted, logged
                audit.unrecorded += len(decisions)
                return
            self.metrics.reject("audit_unavailable")
            raise ApiError(503, "audit_unavailable", f"the decision was not answered because it could not be "
                                                     f"recorded: {err}", location={"in": "server"}) from None
        except EntryError as err:
            self.metrics.reject("invalid_request")
            raise ApiError(422, "invalid_request", f"the request cannot be recorded: {err}") from None

    def record(self, decision: Any, request: Any, caller: str | None, cached: bool | None,
               started_ns: int, ended_ns: int, parent: Any) -> None:
        """Count and trace one decision made (it is audited by `audited`, before this)."""
        self.metrics.decided(decision.decision)
        if self.telemetry.enabled:
            self.telemetry.decided(decision, cached, caller, started_ns, ended_ns, parent)

    def record_batch(self, decisions: list[Any], requests: list[Any], caller: str | None,
                     started_ns: int, ended_ns: int, parent: Any) -> None:
        """Count and trace the decisions of one batch (audited by `audited`, before this)."""
        counts = self.metrics.decisions
        for decision in decisions:
            counts[decision.decision] += 1
        if self.telemetry.enabled:
            self.telemetry.decided_batch(decisions, caller, started_ns, ended_ns, parent)

    def metrics_text(self) -> str:
        return self.metrics.render(self.holder, self.audit)


# The portal's audit page shows at most this many decisions, the latest first.
_AUDIT_PAGE_ROWS = 500


def _audit_search(location: str) -> Callable[[Mapping[str, str]], list[dict[str, Any]]]:
    """The portal's audit page over this service's trail: the filters it offers, as `engine audit query`."""

    def search(filters: Mapping[str, str]) -> list[dict[str, Any]]:
        wanted = Filters(**{k: (v or None) for k, v in filters.items() if k in Filters.__dataclass_fields__})
        rows = collections.deque(query(location, wanted), maxlen=_AUDIT_PAGE_ROWS)
        return [{**row, "rules": (row.get("rules") or "").split()} for row in reversed(rows)]

    return search


async def _decide_batch(requests: list[Any], policy: Any, encoder: DecisionEncoder) -> tuple[list[Any], list[str]]:
    """Decide a batch with one policy, yielding to other requests between slices."""
    decisions: list[Any] = []
    texts: list[str] = []
    for start in range(0, len(requests), _SLICE):
        if start:
            await asyncio.sleep(0)
        for index, request in enumerate(requests[start:start + _SLICE], start):
            try:
                decision = policy.decide(request)
            except RequestError as err:  # named as Policy.decide_many names it
                raise err.within(f"requests[{index}]") from None
            decisions.append(decision)
            texts.append(encoder.encode(decision))
    return decisions, texts


def _json_bytes(text: str) -> Response:
    return Response(text.encode(), media_type="application/json")


def _vocabulary_counts(vocabulary: Any) -> dict[str, int]:
    return {
        "actions": len(vocabulary.actions),
        "roles": len(vocabulary.roles.names),
        "purposes": len(vocabulary.purposes.names),
        "categories": len(vocabulary.categories.names),
        "classifications": len(vocabulary.classifications),
        "agencies": len(vocabulary.agencies),
        "groups": len(vocabulary.groups),
        "agreements": len(vocabulary.agreements),
        "attributes": sum(1 for attribute in vocabulary.attributes.values() if not attribute.builtin),
    }


def policy_info(policy: Any, warnings: list[Any] | None = None) -> dict[str, Any]:
    """What `GET /policy` says about the served set (`warnings`: as of the service's date)."""
    return {
        "version": policy.version,
        "title": policy.title,
        "label": policy.label,
        "combine": policy.combine.value,
        "files": [str(path) for path in policy.files],
        "rules": len(policy.rules),
        "vocabulary": _vocabulary_counts(policy.vocabulary),
        "loaded_at": policy.loaded_at.isoformat(),
        "warnings": [warning.to_json() for warning in (policy.warnings if warnings is None else warnings)],
    }


def _routes(app: FastAPI, service: Service, deciding: Deciding) -> None:
    holder = service.holder
    metrics = service.metrics

    @app.post("/decide", response_model=schemas.Decision, tags=["decisions"],
              openapi_extra=schemas.body_doc("DecisionRequest"),
              responses=schemas.error_responses(400, 401, 403, 413, 415, 422, 503))
    async def decide(request: Request) -> Response:
        """Decide one request (docs/language.md, "How decisions are made"): permit or deny, with reasons and obligations."""

        async def read(limit: int) -> bytes:
            return await read_limited(request, limit)

        return Response(await deciding.answer(request.headers, read), media_type="application/json")

    @app.post("/decide/batch", response_model=schemas.BatchDecisions, tags=["decisions"],
              openapi_extra=schemas.body_doc("BatchRequest"),
              responses=schemas.error_responses(400, 401, 403, 413, 415, 422, 503))
    async def decide_batch(request: Request) -> Response:
        """Decide up to 1,000 requests with one policy version; decisions come back in order."""
        try:
            caller = service.keys.caller(request.headers)
            requests = _batch_requests(require_object(await read_json(request, service.max_body), "a batch"))
            policy = service.current(request.headers)
            today = service.admission.today()  # one date for the whole batch
            requests = [service.admission.admit(item, caller, policy, today, service.audit, f"requests[{index}].")
                        for index, item in enumerate(requests)]
            started = time.time_ns()
            decisions, texts = await _decide_batch(requests, policy, service.encoder)
        except (ApiError, RequestError) as err:
            metrics.reject(err.code)
            raise
        ended = time.time_ns()
        metrics.latency["batch"].observe((ended - started) / 1e9)
        await service.audited(policy, caller, requests, decisions, batch=True)
        service.record_batch(decisions, requests, caller, started, ended, service.telemetry.parent(request.headers))
        return _json_bytes('{"decisions":[' + ",".join(texts) + "]}")

    @app.get("/policy", response_model=schemas.PolicyInfo, tags=["policy"],
             responses=schemas.error_responses(503))
    async def policy() -> Response:
        """The served policy set: version, title, files, rule and vocabulary counts, warnings."""
        policy = service.current()
        admission = service.admission
        day = dt.date.fromisoformat(admission.today())
        return json_response(policy_info(policy, await service.dated.warnings(policy, day, admission.zone)))

    @app.post("/policy/reload", response_model=schemas.Reloaded, tags=["policy"],
              responses=schemas.error_responses(401, 403, 409))
    async def reload(request: Request) -> Response:
        """Load the policy set again (needs the admin token); a set with errors is refused."""
        check_admin(request.headers, service.admin_token)
        result = await holder.reload("reload endpoint")
        if not result.ok:
            return json_response(load_error_body(result.error or PolicyLoadError("refused"), result.current), 409)
        status = "reloaded" if result.changed else "unchanged"
        answer: dict[str, Any] = {"status": status, "previous_version": result.previous,
                                  "policy": policy_info(service.current())}
        signal = service.reload_signal
        if signal is not None:  # the other workers of `engine serve --workers N` must confirm
            signal.send()
            missing = await signal.unconfirmed(result.current)
            if missing:
                answer.update(status="unconfirmed", unconfirmed_workers=missing)
        return json_response(answer)

    @app.get("/healthz", response_model=schemas.Health, tags=["health"])
    async def healthz() -> Response:
        """The process is up."""
        return json_response({"status": "ok"})

    @app.get("/readyz", response_model=schemas.Health, tags=["health"], responses=schemas.error_responses(503))
    async def readyz() -> Response:
        """Ready once a policy set is loaded (and it is the revision or label required, if any)."""
        policy = holder.policy
        problem = unready_reason(policy, service.fleet)
        if problem:
            raise ApiError(503, "not_ready", problem, location={"in": "server"})
        audit = service.audit
        if audit is not None and not audit.available and not audit.keep_deciding:
            raise ApiError(503, "audit_unavailable", audit.problem or "the audit trail cannot be written",
                           location={"in": "server"})
        return json_response({"status": "ready", "policy_version": policy.version})

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    async def metrics_endpoint() -> Response:
        """Prometheus text format: decisions, latency, cache, reloads, the policy version."""
        return PlainTextResponse(service.metrics_text(), media_type=METRICS_CONTENT_TYPE)


def _batch_requests(body: dict[str, Any]) -> list[Any]:
    extra = sorted(set(body) - {"requests"})
    if extra:
        raise ApiError(422, "invalid_request", f"unknown field `{extra[0]}`; a batch is {{\"requests\": [...]}}",
                       field=extra[0])
    requests = body.get("requests")
    if not isinstance(requests, list):
        what = "missing" if requests is None else "not an array"
        raise ApiError(422, "invalid_request", f"`requests` is {what}: give an array of decision requests",
                       field="requests")
    if len(requests) > schemas.MAX_BATCH:
        raise ApiError(422, "invalid_request",
                       f"a batch holds at most {schemas.MAX_BATCH} requests, this one has {len(requests)}",
                       field="requests")
    for index, item in enumerate(requests):
        if not isinstance(item, dict):
            raise ApiError(422, "invalid_request", "each request must be a JSON object", field=f"requests[{index}]")
    return requests


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            _, defs = models_json_schema([(model, "validation") for model in schemas.REQUEST_BODY_MODELS.values()],
                                         ref_template="#/components/schemas/{model}")
            document.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = document
        return app.openapi_schema

    return build


def _lifespan(service: Service) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = service.holder
        service.started = True
        if holder.policy is None and service.bundles is None:  # a bundle is loaded by its poller
            await holder.reload("start")
        if service.audit is not None:
            service.audit.start()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # SIGHUP: external logrotate
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, service.audit.reopen)
        if service.reload_signal is not None:
            watch_supervisor(service.reload_signal.path.parent)
        stop = asyncio.Event()
        watcher = asyncio.create_task(holder.watch(stop)) if service.watch else None
        counting = asyncio.create_task(service.metrics.sync_every(1.0, holder, service.audit, stop)) \
            if service.metrics.shared else None
        listener = asyncio.create_task(service.reload_signal.listen(holder, stop)) \
            if service.reload_signal is not None else None
        poller = asyncio.create_task(service.bundles.run(stop)) if service.bundles is not None else None
        # What start-up built lives as long as the process: keep it out of the
        # garbage collector's full passes, which would otherwise stall requests.
        gc.freeze()
        try:
            yield
        finally:
            stop.set()
            for task in (watcher, listener, poller, counting):
                if task is not None:
                    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(task, 5.0)
            if service.audit is not None:
                await asyncio.to_thread(service.audit.close)
            service.telemetry.shutdown()
            service.metrics.close()

    return lifespan


def create_app(
    policy_path: str | os.PathLike[str] | None = None,
    *,
    admin_token: str | None = None,
    api_keys: Mapping[str, str] | str | None = None,
    audit_log: str | os.PathLike[str] | None = None,
    watch: bool = True,
    max_body: int | None = None,
    policy: Any = None,
    loader: Callable[[Any], Any] | None = None,
    telemetry: Telemetry | None = None,
    reload_signal: str | os.PathLike[str] | None = None,
    date_callers: str | None = None,
    key_agencies: str | None = None,
    timezone: str | None = None,
    max_string: int | None = None,
    fleet: FleetSettings | None = None,
) -> FastAPI:
    """The decision service app. Arguments left as None are read from ENGINE_* variables.

    `policy` is an already loaded Policy for `policy_path` (so `engine serve`
    loads it once); without it the set is loaded when the app starts. With
    `fleet.bundle`, the set comes from that bundle, polled (engine/service/bundles.py).
    """
    env = os.environ
    if admin_token is None:
        admin_token = env.get("ENGINE_ADMIN_TOKEN") or None
    if api_keys is None or isinstance(api_keys, str):
        api_keys = parse_api_keys(env.get("ENGINE_API_KEYS") if api_keys is None else api_keys)
    audit_settings = AuditSettings.from_env(env)
    if audit_log is None:
        audit_log = audit_settings.target
    if max_body is None:
        max_body = int(env.get("ENGINE_MAX_BODY_BYTES") or DEFAULT_MAX_BODY)
    if reload_signal is None:
        reload_signal = env.get("ENGINE_RELOAD_SIGNAL") or None
    if fleet is None:
        fleet = FleetSettings.from_env(env)
    keys = ApiKeys(api_keys)
    admission = Admission.from_settings(
        date_callers=env.get("ENGINE_DATE_CALLERS") if date_callers is None else date_callers,
        key_agencies=env.get("ENGINE_KEY_AGENCIES") if key_agencies is None else key_agencies,
        timezone=timezone or env.get("ENGINE_TIMEZONE") or None,
        max_string=max_string if max_string is not None else int(env.get("ENGINE_MAX_STRING") or 0) or None,
        key_names=keys.names)
    path = str(policy_path) if policy_path is not None else None
    signal = ReloadSignal(reload_signal) if reload_signal else None
    bundles = None
    if fleet.bundle is not None:
        bundles = BundlePoller(fleet, share_dir=signal.path.parent if signal else None, signal=signal)
        holder, watch = bundles.holder, False
    else:
        holder = PolicyHolder(path, loader or load, policy)
    service = Service(holder, keys=keys, admin_token=admin_token, admission=admission,
                      audit=audit_settings.open(audit_log) if audit_log else None,
                      telemetry=telemetry or Telemetry.from_env(), max_body=max_body, watch=watch,
                      reload_signal=signal, fleet=fleet, bundles=bundles)
    app = ServiceApp(title="Sharing policy decision service", version="1",
                     description="Permit or deny multi-agency information sharing, with the reasons "
                                 "in the words of the rule that decided.",
                     lifespan=_lifespan(service), docs_url=None, redoc_url=None)
    service.telemetry.watch_cache(holder.cache_totals)
    app.state.service = service
    install_handlers(app)
    deciding = Deciding(service)
    _routes(app, service, deciding)
    applications.install(app, service)  # /plan, /policy/vocabulary, an offline /docs
    add_portal(app, lambda: holder.policy, path, keys=api_keys, admin_token=admin_token,
               audit_query=_audit_search(str(audit_log)) if audit_log else None)
    if bundles is not None:
        add_bundle_routes(app, bundles)
    app.openapi = applications.openapi(_openapi(app), service)  # type: ignore[method-assign]
    app.add_middleware(Exposure, keys=keys, admin_token=admin_token)
    app.add_middleware(TextGuard, limit=admission.max_string)
    # POST /decide in one ASGI layer in front of the middleware above, doing what they do for it.
    app.add_lane("/decide", DecideLane(app, deciding, admission.max_string))
    return app


def app_from_env() -> FastAPI:
    """The factory each uvicorn worker calls (`engine.service.app:app_from_env`, factory=True)."""

    log_like_uvicorn(os.environ.get("ENGINE_LOG_LEVEL", "INFO"))
    return create_app(os.environ.get("ENGINE_POLICY_PATH") or None,
                      watch=os.environ.get("ENGINE_WATCH", "1") != "0")
