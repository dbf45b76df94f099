"""Screenshots of every portal page for docs/portal.md: `python3 docs/screenshots.py`.

Serves the example policies on a free loopback port, opens each page in
headless Chromium (Debian's `chromium` package) and writes docs/portal/*.png.
"""

from __future__ import annotations

import io
import re
import socket
import sys
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the engine beside this script, installed or not

import uvicorn
from playwright.sync_api import sync_playwright

from engine.service.app import create_app

OUT = ROOT / "docs" / "portal"
EXAMPLES = ROOT / "policies"
TRY = ("/portal/try?decide=1&requester.role=social_worker&requester.agency=manchester_cs&action=share"
       "&purpose=safeguarding.children.child_protection&resource.category=special_category.health"
       "&resource.classification=official_sensitive&resource.owner=ardwick_gp&context.date=2025-06-01"
       "&context.risk_of_harm=true")
PAGES = [("overview", "/portal/"), ("rules", "/portal/rules?role=police_officer"),
         ("matrix", "/portal/matrix?purpose=safeguarding.adults"), ("try", TRY), ("tests", "/portal/tests"),
         ("audit", "/portal/audit")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proposal() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for policy in sorted(EXAMPLES.glob("*.policy")):
            text = re.sub(r"\npermit school_concerns_to_social_care\b.*?\n}\n", "\n", policy.read_text(), flags=re.DOTALL)
            archive.writestr(policy.name, text)
    return buffer.getvalue()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(str(EXAMPLES), watch=False, admin_token="t"),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, path in PAGES:
            page.goto(base + path)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"docs/portal/{name}.png")
        page.goto(base + "/portal/review")
        page.set_input_files("#f-upload", files=[{"name": "proposed.zip", "mimeType": "application/zip",
                                                  "buffer": _proposal()}])
        page.get_by_role("button", name="Review the change").click()
        page.locator("#rule-changes").scroll_into_view_if_needed()
        page.screenshot(path=str(OUT / "review.png"))
        print("docs/portal/review.png")
        browser.close()
    server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
