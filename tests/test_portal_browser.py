"""The portal in a real browser: headless Chromium driven by Playwright, checked with axe-core."""

import os
import re
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is missing: .ci/run installs Debian's chromium package for the browser tests")
    pytest.skip("no Chromium on this machine (apt-get install chromium): browser tests skipped", allow_module_level=True)

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed with the test extra")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

import uvicorn

from engine.service.app import create_app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "policies"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
REQUEST = {  # a request the example tests expect to be permitted
    "requester.role": "social_worker", "requester.agency": "manchester_cs", "action": "share",
    "purpose": "safeguarding.children.child_protection", "resource.category": "special_category.health",
    "resource.classification": "official_sensitive", "resource.owner": "ardwick_gp",
    "context.date": "2025-06-01", "context.risk_of_harm": "true",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = _free_port()
    app = create_app(str(EXAMPLES), watch=False, admin_token="admin-secret", api_keys={})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def _violations(page: Any) -> list[str]:
    result = axe_module.Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG}})
    return [f"{v['id']}: {v['nodes'][0]['html'][:200]}" for v in result.response["violations"]]


def _proposal_zip(tmp_path: Path, rule: str) -> Path:
    path = tmp_path / "proposed.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for policy in sorted(EXAMPLES.glob("*.policy")):
            text = re.sub(rf"\n(permit|deny) {rule}\b.*?\n}}\n", "\n", policy.read_text(), flags=re.DOTALL)
            archive.writestr(policy.name, text)
    return path


def _matrix_rule(page: Any, base_url: str) -> str:
    page.goto(f"{base_url}/portal/matrix")
    href = page.locator('a[href^="/portal/rules#rule-"]').first.get_attribute("href")
    return href.split("#rule-")[1]


PAGES = ["/portal/", "/portal/rules", "/portal/matrix", "/portal/try", "/portal/review", "/portal/tests",
         "/portal/audit", "/portal/try?decide=1&" + "&".join(f"{k}={v}" for k, v in REQUEST.items()),
         "/portal/try?decide=1&requester.role=nurse"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_with_no_accessibility_violations(page: Any, base_url: str, path: str) -> None:
    page.goto(base_url + path)
    assert page.locator("h1").count() == 1
    assert _violations(page) == []


def test_the_review_page_shows_a_removed_rule_and_passes_the_accessibility_checks(
        page: Any, base_url: str, tmp_path: Path) -> None:
    rule = _matrix_rule(page, base_url)
    page.goto(f"{base_url}/portal/review")
    page.set_input_files("#f-upload", str(_proposal_zip(tmp_path, rule)))
    page.get_by_role("button", name="Review the change").click()
    assert page.get_by_text(re.compile(rf"^removed {rule}$")).count() == 1 or \
        page.locator("ul.rule-changes li", has_text=rule).count() == 1
    assert page.get_by_text("now refused").count() > 0
    assert _violations(page) == []


def test_the_request_form_answers_with_the_decision(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/portal/try")
    for name, value in REQUEST.items():
        field = page.locator(f'[name="{name}"]')
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Decide").click()
    assert page.locator("#answer-heading").inner_text().endswith("PERMIT")
    assert page.get_by_text("child_protection_enquiry").count() > 0


def test_pages_work_with_javascript_off(browser: Any, base_url: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{base_url}/portal/rules")
    page.fill("#f-text", "marketing")
    page.get_by_role("button", name="Show rules").click()
    assert "text=marketing" in page.url
    shown = page.locator("li.rule").count()
    assert 0 < shown < 28
    page.goto(f"{base_url}/portal/try")
    for name, value in REQUEST.items():
        field = page.locator(f'[name="{name}"]')
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Decide").click()
    assert page.locator("#answer-heading").inner_text().endswith("PERMIT")
    context.close()


def _tab_to(page: Any, element_id: str, limit: int = 80) -> None:
    for _ in range(limit):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_the_request_form_can_be_used_with_the_keyboard_alone(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/portal/try")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    for name, value in REQUEST.items():
        if name == "context.date":
            continue  # left empty: today (a date input's typing order depends on the browser's locale)
        element_id = "f-" + name.replace(".", "-")
        _tab_to(page, element_id)
        if page.evaluate("document.activeElement.tagName") == "SELECT":
            index = page.evaluate(
                "v => Array.from(document.activeElement.options).findIndex(o => o.value === v)", value)
            assert index > 0, (name, value)
            current = page.evaluate("document.activeElement.selectedIndex")
            for _ in range(index - current):
                page.keyboard.press("ArrowDown")
            assert page.evaluate("document.activeElement.value") == value
        else:
            page.keyboard.type(value)
    _tab_to_button(page)
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer-heading")
    assert page.locator("#answer-heading").inner_text().endswith("PERMIT")


def _tab_to_button(page: Any, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "BUTTON":
            return
    raise AssertionError("Tab never reached the Decide button")


def test_the_audit_page_refuses_without_the_admin_token(page: Any, base_url: str) -> None:
    response = page.goto(f"{base_url}/portal/audit")
    assert response is not None and response.status == 403
    assert page.get_by_label("Admin token").count() == 1
    assert page.locator("table").count() == 0
