"""The portal's pages as routes: read the query or form, build the page's data, render its template."""

from __future__ import annotations

import datetime as dt
import hmac
import io
import shutil
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

import engine
from engine import clock
from engine.errors import PolicyLoadError
from engine.governance.table import COLUMNS
from engine.governance.terms import DIMENSIONS
from engine.loader import default_policy_dir
from engine.portal import views
from engine.portal.source import PortalState, Source
from engine.testing.report import failure_lines
from engine.testing.runner import TEST_FILE_GLOB, run_test_files

KEY_COOKIE = "engine_portal_key"
ADMIN_COOKIE = "engine_portal_admin"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a zip of policy files is a few hundred KiB at most
MAX_UPLOAD_FILES = 2_000
MAX_UNPACKED_BYTES = 50 * 1024 * 1024  # what the files may come to unpacked: no zip bombs

NAV = (("/", "Overview"), ("/rules", "Rules"), ("/matrix", "Who can see what"), ("/try", "Try a request"),
       ("/review", "Review a change"), ("/tests", "Tests"), ("/audit", "Audit"))

_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass
class Access:
    """Who may see the portal: anyone with an API key when keys are set; the audit page needs the admin token."""

    keys: Mapping[str, str] = field(default_factory=dict)  # caller name -> key
    admin_token: str | None = None
    secure_cookies: bool = True

    def key_holder(self, secret: str | None) -> str | None:
        """The caller whose key this is; None when it is no key."""
        if not secret:
            return None
        given = secret.encode()
        found = None
        for name, key in self.keys.items():
            if hmac.compare_digest(given, key.encode()) and found is None:
                found = name
        return found

    def is_admin(self, secret: str | None) -> bool:
        return bool(self.admin_token and secret and hmac.compare_digest(secret.encode(), self.admin_token.encode()))


@dataclass
class Portal:
    """What the pages need: where the set comes from, who may look, what day it is, the audit trail."""

    source: Source
    access: Access
    today: Callable[[], dt.date] = clock.today
    audit_query: Callable[[Mapping[str, str]], list[dict[str, Any]]] | None = None
    draft: bool = False  # `engine portal`: a folder being written, not the served set


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("engine.portal", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def _static(name: str) -> bytes | None:
    if "/" in name or name.startswith(".") or PurePosixPath(name).suffix not in _STATIC_TYPES:
        return None
    found = resources.files("engine.portal").joinpath("static", name)
    return found.read_bytes() if found.is_file() else None


def create_router(portal: Portal, prefix: str = "/portal") -> APIRouter:
    """The portal's routes under `prefix`, for the service or `engine portal` to include."""
    env = _environment()
    router = APIRouter(include_in_schema=False)

    def page(request: Request, template: str, title: str, current: str, state: PortalState | None,
             status: int = 200, **values: Any) -> HTMLResponse:
        policy = state.policy if state is not None else None
        context = {
            "base": prefix, "nav": NAV, "current": current, "page_title": title,
            "signed_in": bool(portal.access.keys) and request.cookies.get(KEY_COOKIE) is not None,
            "set_title": policy.title if policy else None, "set_label": policy.label if policy else None,
            "set_path": state.path if state else "", "set_version": policy.version if policy else None,
            "loaded": policy is not None, "state_problem": state.problem if state else None,
            "draft_note": ("A draft: this page shows the files in the folder as they are now, "
                           "read again whenever one changes.") if portal.draft else None,
            **values,
        }
        return HTMLResponse(env.get_template(template).render(context), status_code=status)

    def signed_in(request: Request) -> bool:
        access = portal.access
        return not access.keys or access.key_holder(request.cookies.get(KEY_COOKIE)) is not None

    def sign_in_first(request: Request) -> RedirectResponse:
        target = urllib.parse.quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"{prefix}/sign-in?next={target}", status_code=303)

    @router.get(prefix + "/static/{name}")
    async def static(name: str) -> Response:
        data = _static(name)
        if data is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(data, media_type=_STATIC_TYPES[PurePosixPath(name).suffix],
                        headers={"Cache-Control": "public, max-age=3600"})

    @router.get(prefix)
    async def root() -> RedirectResponse:
        return RedirectResponse(prefix + "/", status_code=307)

    @router.get(prefix + "/")
    def overview(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        data = views.overview(state, portal.today())
        return page(request, "overview.html", "Overview", "/", state, o=data, error_count=len(data.errors))

    @router.get(prefix + "/rules")
    def rules(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        q = request.query_params
        filters = views.RuleFilters(*(q.get(k, "").strip() for k in ("text", "agency", "role", "purpose", "category")))
        if state.policy is None:
            return page(request, "rules.html", "Rules", "/rules", state)
        cards = views.rules_page(state.policy, filters)
        return page(request, "rules.html", "Rules", "/rules", state, cards=cards, filters=filters,
                    total=len(state.policy.rules), choices=views.vocabulary_choices(state.policy.vocabulary))

    def matrix_inputs(request: Request, state: PortalState) -> tuple[dt.date, dict[str, str], dict[str, str],
                                                                     list[views.Field], str | None]:
        q = request.query_params
        assert state.policy is not None
        fields = [f for f in views.request_fields(state.policy.vocabulary)
                  if f.name.startswith("context.") and f.name != "context.date"]
        filters = {k: q.get(k, "") for k in views.MATRIX_FILTERS}
        context = {f.name: q.get(f.name, "") for f in fields}
        text = q.get("date", "")
        try:
            date = dt.date.fromisoformat(text) if text else portal.today()
        except ValueError:
            return portal.today(), filters, context, fields, f"{text} is not a date: write it as 2025-06-01"
        return date, filters, context, fields, None

    @router.get(prefix + "/matrix")
    def matrix(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        if state.policy is None:
            return page(request, "matrix.html", "Who can see what", "/matrix", state)
        date, filters, context, fields, problem = matrix_inputs(request, state)
        data = views.matrix_page(state.policy, date, filters, context)
        if problem:
            data.error = problem
        return page(request, "matrix.html", "Who can see what", "/matrix", state, page=data, filters=filters,
                    context=context, context_fields=fields, date=date.isoformat(), query=request.url.query,
                    choices=views.vocabulary_choices(state.policy.vocabulary), error_count=int(bool(data.error)))

    @router.get(prefix + "/matrix.csv")
    def matrix_csv(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        if state.policy is None:
            return PlainTextResponse("the policy set is not loaded", status_code=503)
        date, filters, context, _fields, problem = matrix_inputs(request, state)
        data = views.matrix_page(state.policy, date, filters, context)
        if problem or data.error:
            return PlainTextResponse(problem or data.error or "", status_code=422)
        return Response(data.csv, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="who-can-see-what.csv"'})

    def answer_for(request: Request, state: PortalState) -> tuple[list[views.Field], dict[str, str],
                                                                 views.Answer | None]:
        assert state.policy is not None
        fields = views.request_fields(state.policy.vocabulary)
        values = {f.name: views.full_choice(f, request.query_params.get(f.name, "")) for f in fields}
        if not request.query_params.get("decide"):
            return fields, values, None
        built = views.build_request(fields, values, portal.today())
        return fields, values, views.try_request(state.policy, built)

    @router.get(prefix + "/try")
    def try_page(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        if state.policy is None:
            return page(request, "try.html", "Try a request", "/try", state)
        fields, values, answer = answer_for(request, state)
        failed = answer is not None and answer.error is not None
        return page(request, "try.html", "Try a request", "/try", state, fields=fields, values=values,
                    answer=answer, query=request.url.query, error_count=int(failed), status=422 if failed else 200)

    @router.get(prefix + "/try.yaml")
    def try_yaml(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        if state.policy is None:
            return PlainTextResponse("the policy set is not loaded", status_code=503)
        _fields, _values, answer = answer_for(request, state)
        if answer is None or answer.decision is None:
            message = answer.error.message if answer is not None and answer.error is not None else "nothing decided"
            return PlainTextResponse(message, status_code=422)
        return Response("cases:\n" + _indent(answer.test_case), media_type="application/yaml; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="case.test.yaml"'})

    @router.get(prefix + "/review")
    def review_form(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        return review_page(request, state)

    def review_page(request: Request, state: PortalState, **values: Any) -> HTMLResponse:
        values.setdefault("folder", "")
        values.setdefault("revision", "")
        error_count = int(bool(values.get("problem")))
        return page(request, "review.html", "Review a change", "/review", state,
                    git_available=state.root is not None and shutil.which("git") is not None,
                    headers=[COLUMNS[p] for p in DIMENSIONS], dimensions=DIMENSIONS,
                    error_count=error_count, status=422 if error_count else 200, **values)

    @router.post(prefix + "/review")
    async def review(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        if state.policy is None:
            return review_page(request, state)
        form = await request.form(max_files=1, max_fields=10)
        folder = str(form.get("folder") or "").strip()
        revision = str(form.get("revision") or "").strip()
        upload = form.get("upload")
        with tempfile.TemporaryDirectory(prefix="engine-portal-") as scratch:
            try:
                proposed, shown = await _proposed(upload, folder, revision, state, Path(scratch))
            except _NotReviewable as err:
                return review_page(request, state, folder=folder, revision=revision, problem=str(err))
            try:
                policy = engine.load(proposed)
            except PolicyLoadError as err:
                errors = [views.problem_of(d) for d in err.diagnostics]
                result = views.Review(shown, errors=errors)
                if not errors:
                    return review_page(request, state, folder=folder, revision=revision, problem=err.message)
                return review_page(request, state, folder=folder, revision=revision, result=result)
        result = views.review(state.policy, policy, shown)
        return review_page(request, state, folder=folder, revision=revision, result=result)

    @router.get(prefix + "/tests")
    def tests(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        if state.policy is None:
            return page(request, "tests.html", "Tests", "/tests", state)
        root = state.root if state.root is not None else default_policy_dir()
        folder = root if root.is_dir() else root.parent
        paths = sorted(p for p in folder.rglob(TEST_FILE_GLOB) if p.is_file())
        report = run_test_files(state.policy, paths)
        return page(request, "tests.html", "Tests", "/tests", state, report=report, failure_lines=failure_lines)

    @router.get(prefix + "/audit")
    def audit(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        state = portal.source.state()
        access = portal.access
        if not access.is_admin(request.cookies.get(ADMIN_COOKIE)):
            why = ("The audit trail shows who asked to see whose records: it needs the service's admin token."
                   if access.admin_token else
                   "The audit page is off: the service has no admin token (ENGINE_ADMIN_TOKEN).")
            return page(request, "sign_in.html", "Audit: sign in", "/audit", state, why=why,
                        action=f"{prefix}/audit", next=f"{prefix}/audit", key_label="Admin token",
                        failed=None, status=403)
        q = request.query_params
        filters = {k: q.get(k, "").strip() for k in ("resource", "requester", "agency", "owner", "since", "until",
                                                     "decision")}
        entries = None
        problem = None
        if portal.audit_query is None:
            problem = "This service keeps no audit trail (start it with --audit-log)."
        elif any(filters.values()):
            try:
                entries = portal.audit_query(filters)
            except ValueError as err:
                problem = str(err)
        return page(request, "audit.html", "Audit", "/audit", state, filters=filters, entries=entries,
                    problem=problem, error_count=int(bool(problem)))

    @router.post(prefix + "/audit")
    async def audit_sign_in(request: Request) -> Response:
        if not signed_in(request):
            return sign_in_first(request)
        form = await request.form(max_files=0, max_fields=5)
        secret = str(form.get("key") or "")
        if not portal.access.is_admin(secret):
            state = portal.source.state()
            return page(request, "sign_in.html", "Audit: sign in", "/audit", state,
                        why="The audit trail shows who asked to see whose records: it needs the admin token.",
                        action=f"{prefix}/audit", next=f"{prefix}/audit", key_label="Admin token",
                        failed="That is not the admin token", error_count=1, status=403)
        response = RedirectResponse(f"{prefix}/audit", status_code=303)
        _set_cookie(response, ADMIN_COOKIE, secret, prefix, portal.access.secure_cookies)
        return response

    @router.get(prefix + "/sign-in")
    def sign_in_form(request: Request) -> Response:
        return page(request, "sign_in.html", "Sign in", "", None, why=_SIGN_IN_WHY, action=f"{prefix}/sign-in",
                    next=_safe_next(request.query_params.get("next"), prefix), key_label="API key", failed=None)

    @router.post(prefix + "/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=5)
        secret = str(form.get("key") or "")
        target = _safe_next(str(form.get("next") or ""), prefix)
        if portal.access.keys and portal.access.key_holder(secret) is None:
            return page(request, "sign_in.html", "Sign in", "", None, why=_SIGN_IN_WHY, action=f"{prefix}/sign-in",
                        next=target, key_label="API key", failed="That API key is not recognised",
                        error_count=1, status=401)
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, KEY_COOKIE, secret, prefix, portal.access.secure_cookies)
        return response

    @router.post(prefix + "/sign-out")
    async def sign_out() -> Response:
        response = RedirectResponse(f"{prefix}/sign-in", status_code=303)
        for name in (KEY_COOKIE, ADMIN_COOKIE):
            response.delete_cookie(name, path=prefix)
        return response

    return router


_SIGN_IN_WHY = "This service asks for an API key. Use the key your service's operators gave you."


def _set_cookie(response: Response, name: str, value: str, prefix: str, secure: bool) -> None:
    # A session cookie (no expiry): HTTP-only, so no script reads the key; strict same-site, so no
    # other site's page can post a form with it.
    response.set_cookie(name, value, path=prefix, httponly=True, secure=secure, samesite="strict")


def _safe_next(target: str | None, prefix: str) -> str:
    """Only a path inside the portal: never another site."""
    if target and target.startswith(prefix + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return prefix + "/"


def _indent(text: str) -> str:
    return "".join("  " + line if line.strip() else line for line in text.splitlines(keepends=True))


class _NotReviewable(Exception):
    """A proposed version that cannot be read; the message says why, for the page."""


async def _proposed(upload: Any, folder: str, revision: str, state: PortalState, scratch: Path) -> tuple[str, str]:
    """The path of the proposed set, and how to name it to people."""
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise _NotReviewable(f"the zip file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        return str(extract_policies(data, scratch)), upload.filename
    if revision:
        if state.root is None:
            raise _NotReviewable("a git revision can be reviewed only for a policy folder")
        from engine.governance.diff import GitError, checkout_policies

        try:
            folder_root = state.root if state.root.is_dir() else state.root.parent
            found = checkout_policies(revision, ".", scratch, cwd=str(folder_root))
            return str(found), f"git revision {revision}"
        except GitError as err:
            raise _NotReviewable(str(err)) from None
    if folder:
        if not Path(folder).exists():
            raise _NotReviewable(f"there is no folder {folder} on this server")
        return folder, folder
    raise _NotReviewable("choose a zip file to upload, a folder or a git revision")


def extract_policies(data: bytes, into: Path) -> Path:
    """Unpack the `.policy` and `*.test.yaml` files of a zip, refusing anything that could escape `into`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _NotReviewable("the upload is not a zip file") from None
    members = archive.infolist()
    if len(members) > MAX_UPLOAD_FILES:
        raise _NotReviewable(f"the zip file holds more than {MAX_UPLOAD_FILES} files")
    written = unpacked = 0
    for member in members:
        name = PurePosixPath(member.filename)
        if member.is_dir() or not (name.suffix == ".policy" or name.name.endswith(TEST_FILE_GLOB[1:])):
            continue
        if name.is_absolute() or ".." in name.parts or (member.external_attr >> 28) == 0o12:
            raise _NotReviewable(f"the zip file holds {member.filename}, which points outside it")
        unpacked += member.file_size
        if unpacked > MAX_UNPACKED_BYTES:
            raise _NotReviewable(f"the policy files in the zip come to more than "
                                 f"{MAX_UNPACKED_BYTES // (1024 * 1024)} MB")
        target = into.joinpath(*name.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(member))
        written += 1
    if not written:
        raise _NotReviewable("the zip file holds no .policy files")
    return into
