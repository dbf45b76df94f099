import io
import json
import re
import shutil
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from engine.portal.app import create_portal_app
from engine.service.app import create_app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "policies"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGINE_API_KEYS", "ENGINE_ADMIN_TOKEN", "ENGINE_AUDIT_LOG", "ENGINE_POLICY_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(str(EXAMPLES), watch=False)) as test_client:
        yield test_client


def _flatten(request: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A request as the portal's form names its fields: `requester.role`, `context.consent`."""
    flat: dict[str, str] = {}
    for key, value in request.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        elif isinstance(value, list):  # a set: its members separated by commas, as the form takes them
            flat[name] = ", ".join(str(v) for v in value)
        else:
            flat[name] = str(value)
    return flat


def _example_cases() -> list[tuple[str, dict[str, Any], str]]:
    cases = []
    for path in sorted(EXAMPLES.glob("*.test.yaml")):
        data = yaml.safe_load(path.read_text())
        defaults = data.get("defaults", {})
        for case in data["cases"]:
            request = {**defaults, **case["request"]}
            request["context"] = {**defaults.get("context", {}), **case["request"].get("context", {})}
            cases.append((case["name"], request, case["expect"]))
    return cases[::6] + [c for c in cases if "within 28 days of discharge" in c[0]]  # a spread across every file; the full set runs under `engine test`


def _decision_on(page: str) -> str:
    found = re.search(r'What-if answer: <strong class="tag tag-(permit|deny)">', page)
    assert found, page[:3000]
    return found.group(1)


@pytest.mark.parametrize(("name", "request_", "expected"), _example_cases(), ids=[c[0] for c in _example_cases()])
def test_the_request_form_decides_as_the_example_tests_expect(client: TestClient, name: str,
                                                              request_: dict[str, Any], expected: str) -> None:
    query = urllib.parse.urlencode({"decide": "1", **_flatten(request_)})
    response = client.get(f"/portal/try?{query}")
    assert response.status_code == 200
    assert _decision_on(response.text) == expected


@pytest.mark.parametrize(("path", "heading", "shows"), [
    ("/portal/", "Overview", "Agreements"),
    ("/portal/rules", "Rules", "Legal basis"),
    ("/portal/matrix", "Who can see what", "Download these rows as CSV"),
    ("/portal/try", "Try a request", "what-if"),
    ("/portal/review", "Review a change", "Upload a zip file"),
    ("/portal/tests", "Tests", "passed, 0 failed"),
])
def test_each_page_loads_with_its_heading(client: TestClient, path: str, heading: str, shows: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert f"<h1>{heading}</h1>" in response.text
    assert shows in response.text
    assert 'aria-current="page"' in response.text


def test_the_service_root_leads_to_the_portal(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/portal/"


def test_the_portal_is_not_part_of_the_decision_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/portal") or p == "/"]


def test_an_invalid_request_names_the_field_at_fault(client: TestClient) -> None:
    response = client.get("/portal/try?decide=1&requester.role=social_worker")
    assert response.status_code == 422
    assert "The request cannot be decided" in response.text
    assert 'href="#f-requester-agency"' in response.text


def test_a_what_if_answer_links_to_itself_and_saves_as_a_test_case(client: TestClient) -> None:
    _name, request, expected = _example_cases()[0]
    query = urllib.parse.urlencode({"decide": "1", **_flatten(request)})
    page = client.get(f"/portal/try?{query}").text
    assert f'href="/portal/try?{query.replace("&", "&amp;")}"' in page
    saved = client.get(f"/portal/try.yaml?{query}")
    assert saved.status_code == 200
    case = yaml.safe_load(saved.text)["cases"][0]
    assert case["expect"] == expected
    assert case["request"]["requester"]["role"] == request["requester"]["role"]


def test_rules_are_filtered_by_words_and_by_role(client: TestClient) -> None:
    everything = client.get("/portal/rules").text.count('<li class="rule"')
    marketing = client.get("/portal/rules?text=marketing").text.count('<li class="rule"')
    police = client.get("/portal/rules?role=police_officer").text.count('<li class="rule"')
    assert 0 < marketing < everything
    assert 0 < police < everything


def test_the_matrix_downloads_as_csv(client: TestClient) -> None:
    response = client.get("/portal/matrix.csv?purpose=safeguarding")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0].startswith("Action,")


def test_a_matrix_filter_that_is_not_declared_says_so(client: TestClient) -> None:
    response = client.get("/portal/matrix?agency=nowhere")
    assert "That filter cannot be used" in response.text


def _zip_of(folder: Path, leave_out: str | None = None, extra: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.glob("*.policy")):
            text = path.read_text()
            if leave_out is not None:
                text = _without_rule(text, leave_out)
            archive.writestr(f"proposed/{path.name}", text)
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _without_rule(text: str, rule: str) -> str:
    return re.sub(rf"\n(permit|deny) {rule}\b.*?\n}}\n", "\n", text, flags=re.DOTALL)


def _a_permit_rule() -> str:
    """A rule that permits something with the context at its defaults (the matrix shows it)."""
    with TestClient(create_portal_app(str(EXAMPLES))) as test_client:
        found = re.search(r'href="/portal/rules#rule-(\w+)"', test_client.get("/portal/matrix").text)
    assert found
    return found.group(1)


def _file_of(folder: Path, rule: str) -> Path:
    return next(p for p in sorted(folder.glob("*.policy")) if re.search(rf"^permit {rule}\b", p.read_text(), re.MULTILINE))


def test_reviewing_an_upload_shows_a_removed_rule_and_what_it_changes(client: TestClient) -> None:
    rule = _a_permit_rule()
    response = client.post("/portal/review", files={"upload": ("proposed.zip", _zip_of(EXAMPLES, rule),
                                                               "application/zip")})
    assert response.status_code == 200
    assert re.search(rf'tag-deny">removed</strong> rule {rule}: decided differently in', response.text)
    assert "combinations are decided differently" in response.text
    assert "now refused" in response.text


def test_a_review_that_could_not_settle_everything_says_so(client: TestClient, monkeypatch) -> None:
    monkeypatch.setattr("engine.governance.context._SEARCH", 0)  # every search for a request gives up
    rule = _a_permit_rule()
    response = client.post("/portal/review", files={"upload": ("proposed.zip", _zip_of(EXAMPLES, rule),
                                                               "application/zip")})
    assert response.status_code == 200
    assert "combinations that could not be settled" in response.text
    assert "Every context value and every date was compared." not in response.text
    assert "No change: no request is decided differently" not in response.text


def test_a_review_with_changes_and_combinations_not_settled_says_both(client: TestClient, monkeypatch) -> None:
    from engine.governance import diff

    def partly_settled(old, new):
        found = real(old, new)
        found.unsettled = 5
        return found

    real = diff.build_diff
    monkeypatch.setattr(diff, "build_diff", partly_settled)
    response = client.post("/portal/review", files={"upload": ("proposed.zip", _zip_of(EXAMPLES, _a_permit_rule()),
                                                               "application/zip")})
    assert "combinations are decided differently" in response.text
    assert "Not compared: 5 combinations that could not be settled" in response.text
    assert "Every context value and every date was compared." not in response.text


def test_reviewing_the_same_set_finds_no_change(client: TestClient) -> None:
    response = client.post("/portal/review", data={"folder": str(EXAMPLES)})
    assert "No rule, agreement, vocabulary, attribute or obligation is added, removed or changed." in response.text
    assert "No change: no request is decided differently" in response.text


@pytest.mark.parametrize(("name", "problem"), [
    ("../outside.policy", "points outside it"),
    ("/etc/absolute.policy", "points outside it"),
])
def test_an_upload_that_would_escape_its_folder_is_refused(client: TestClient, name: str, problem: str) -> None:
    response = client.post("/portal/review", files={"upload": ("p.zip", _zip_of(EXAMPLES, extra={name: "x"}),
                                                               "application/zip")})
    assert response.status_code == 422
    assert problem in response.text


def test_an_upload_that_is_not_a_zip_is_refused(client: TestClient) -> None:
    response = client.post("/portal/review", files={"upload": ("p.zip", b"not a zip", "application/zip")})
    assert response.status_code == 422
    assert "not a zip file" in response.text


def test_reviewing_a_proposed_set_with_errors_shows_them(client: TestClient, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(EXAMPLES, broken)
    (broken / "20_children.policy").write_text((broken / "20_children.policy").read_text() + "\npermit oops {\n")
    response = client.post("/portal/review", data={"folder": str(broken)})
    assert "The proposed version has errors" in response.text
    assert "20_children.policy:" in response.text


def test_the_audit_page_refuses_without_the_admin_token(tmp_path: Path) -> None:
    app = create_app(str(EXAMPLES), watch=False, admin_token="s3cret")
    with TestClient(app, base_url="https://testserver") as test_client:
        assert test_client.get("/portal/audit").status_code == 403
        wrong = test_client.post("/portal/audit", data={"key": "guess"}, follow_redirects=False)
        assert wrong.status_code == 403
        right = test_client.post("/portal/audit", data={"key": "s3cret"}, follow_redirects=False)
        assert right.status_code == 303
        assert test_client.get("/portal/audit").status_code == 200


def test_with_api_keys_the_portal_asks_for_one_and_keeps_it_in_a_protected_cookie() -> None:
    app = create_app(str(EXAMPLES), watch=False, api_keys={"portal": "k-123"})
    with TestClient(app, base_url="https://testserver") as test_client:
        first = test_client.get("/portal/rules", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"].startswith("/portal/sign-in?next=")
        refused = test_client.post("/portal/sign-in", data={"key": "nope", "next": "/portal/rules"})
        assert refused.status_code == 401
        assert "not recognised" in refused.text
        accepted = test_client.post("/portal/sign-in", data={"key": "k-123", "next": "/portal/rules"},
                                    follow_redirects=False)
        assert accepted.headers["location"] == "/portal/rules"
        cookie = accepted.headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
        assert test_client.get("/portal/rules").status_code == 200


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example/", "/docs"])
def test_signing_in_never_leads_off_the_portal(target: str) -> None:
    app = create_app(str(EXAMPLES), watch=False, api_keys={"portal": "k-123"})
    with TestClient(app, base_url="https://testserver") as test_client:
        response = test_client.post("/portal/sign-in", data={"key": "k-123", "next": target},
                                    follow_redirects=False)
        assert response.headers["location"] == "/portal/"


def test_a_what_if_is_never_written_to_the_audit_trail(tmp_path: Path) -> None:
    trail = tmp_path / "decisions.audit.jsonl"
    _name, request, _expected = _example_cases()[0]
    with TestClient(create_app(str(EXAMPLES), watch=False, audit_log=str(trail))) as test_client:
        query = urllib.parse.urlencode({"decide": "1", **_flatten(request)})
        assert test_client.get(f"/portal/try?{query}").status_code == 200
    assert not trail.exists() or trail.read_text() == ""


def test_a_draft_with_errors_shows_each_error_where_it_is(tmp_path: Path) -> None:
    draft = tmp_path / "draft"
    shutil.copytree(EXAMPLES, draft)
    (draft / "30_adults.policy").write_text((draft / "30_adults.policy").read_text() + "\npermit half {\n")
    with TestClient(create_portal_app(str(draft))) as test_client:
        page = test_client.get("/portal/").text
        assert "cannot be used" in page
        assert "30_adults.policy:" in page
        assert "A draft" in page
        assert "could not be loaded" in test_client.get("/portal/try").text


def test_a_draft_is_read_again_when_a_file_changes(tmp_path: Path) -> None:
    draft = tmp_path / "draft"
    shutil.copytree(EXAMPLES, draft)
    with TestClient(create_portal_app(str(draft))) as test_client:
        before = test_client.get("/portal/rules").text.count('<li class="rule"')
        rule = _a_permit_rule()
        path = _file_of(draft, rule)
        path.write_text(_without_rule(path.read_text(), rule))
        after = test_client.get("/portal/rules").text.count('<li class="rule"')
        assert after == before - 1


def test_static_files_ship_in_the_package(client: TestClient) -> None:
    assert client.get("/portal/static/portal.css").headers["content-type"].startswith("text/css")
    assert client.get("/portal/static/portal.js").status_code == 200
    assert client.get("/portal/static/..%2Fapp.py").status_code == 404
    assert client.get("/portal/static/nothing.css").status_code == 404


def test_a_zip_that_unpacks_to_too_much_is_refused(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.policy", "#" * (60 * 1024 * 1024))
    response = client.post("/portal/review", files={"upload": ("p.zip", buffer.getvalue(), "application/zip")})
    assert response.status_code == 422
    assert "come to more than" in response.text


def test_a_git_revision_of_the_policy_folder_can_be_reviewed(tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "policies")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=repo, check=True)
    rule = _a_permit_rule()
    path = _file_of(repo / "policies", rule)
    path.write_text(_without_rule(path.read_text(), rule))
    with TestClient(create_app(str(repo / "policies"), watch=False)) as test_client:
        response = test_client.post("/portal/review", data={"revision": "HEAD"})
    # The served set lacks the rule; the committed revision still has it: reviewing it adds the rule back.
    assert re.search(rf'tag-permit">added</strong> rule {rule}:', response.text), response.text[-3000:]


def test_the_audit_page_finds_who_asked_for_a_record(tmp_path: Path) -> None:
    trail = tmp_path / "decisions.audit.jsonl"
    _name, request, expected = _example_cases()[0]
    asked = {**request, "requester": {**request["requester"], "id": "u-17"},
             "resource": {**request["resource"], "id": "child-42"}}
    app = create_app(str(EXAMPLES), watch=False, admin_token="s3cret", audit_log=str(trail))
    with TestClient(app, base_url="https://testserver") as test_client:
        body = json.loads(json.dumps(asked, default=str))  # YAML's dates as the JSON strings callers send
        body["context"].pop("date", None)  # the service sets the date from its own clock
        assert test_client.post("/decide", json=body).status_code == 200
        test_client.post("/portal/audit", data={"key": "s3cret"})
        found = test_client.get("/portal/audit?resource=child-42").text
        nothing = test_client.get("/portal/audit?resource=child-99").text
    assert "1 decision found" in found
    assert "u-17" in found and f'tag-{expected}">{expected}' in found
    assert "No decision in the trail matches." in nothing
