"""How long each portal page takes to render on the example set: `python3 bench/portal.py [--repeat N]`.

Each page is requested through the ASGI app in-process (no network), so the
figure is the server's own time to build and render the page: the target is
under 300 ms per page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The engine beside this script, installed or not; and not bench/ itself first, whose http.py
# would stand in for the standard library's http module.
sys.path[0] = str(ROOT)

from fastapi.testclient import TestClient

from engine.service.app import create_app

TRY = ("/portal/try?decide=1&requester.role=social_worker&requester.agency=manchester_cs&action=share"
       "&purpose=safeguarding.children.child_protection&resource.category=special_category.health"
       "&resource.classification=official_sensitive&resource.owner=ardwick_gp&context.date=2025-06-01"
       "&context.risk_of_harm=true")
PAGES = ["/portal/", "/portal/rules", "/portal/matrix", "/portal/try", TRY, "/portal/review", "/portal/tests"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with TestClient(create_app(str(ROOT / "policies"), watch=False)) as client:
        print("| page | median ms | p90 ms |\n|---|---|---|")
        for path in PAGES:
            client.get(path)  # warm: templates compiled, caches filled
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            times.sort()
            shown = path if len(path) < 40 else path[:37] + "..."
            print(f"| `{shown}` | {statistics.median(times):.1f} | {times[int(len(times) * 0.9) - 1]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
