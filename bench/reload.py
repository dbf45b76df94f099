"""How soon a changed file is served: `POST /policy/reload` against `engine serve`, timed by its caller.

Writes bench/load.py's generated set (10,000 rules in 102 files by default),
starts `engine serve` on it (file watching off, so only the endpoint loads),
then, round after round, appends a comment line to one rule file and times
the reload endpoint from request to response. The response comes once the
new set is swapped in and serving; it carries the set's warnings (about
750 KB for the generated 10,000 rules), which the time includes.

    python bench/reload.py                  # 10,000 rules, 12 reloads
    python bench/reload.py --rules 2000 --reloads 5

Target: every reload of one file of a 10,000-rule set serving within 1 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would shadow the standard library's http package: this folder goes last on the path.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

from load import write_set

TOKEN = "bench-reload"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"engine serve exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("engine serve was not ready in time")


def reload_once(base: str) -> tuple[float, int, str]:
    request = urllib.request.Request(f"{base}/policy/reload", method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    seconds = time.perf_counter() - started
    status = "reloaded" if b'"status":"reloaded"' in body else "other"
    return seconds, len(body), status


def _rss_mb(pid: int) -> float:
    """Resident memory of the server process, MB (Linux /proc; 0 elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--reloads", type=int, default=12)
    args = parser.parse_args()
    engine = shutil.which("engine", path=str(Path(sys.executable).parent)) or "engine"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_set(root, args.rules)
        changed = max(root.glob("20_*.policy"))
        text = changed.read_text(encoding="utf-8")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ENGINE_WATCH": "0", "ENGINE_ADMIN_TOKEN": TOKEN, "ENGINE_LOG_LEVEL": "warning"}
        process = subprocess.Popen([engine, "serve", str(root), "--port", str(port), "--no-watch"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(base, process)
            print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; nproc {os.cpu_count()}; "
                  f"Python {platform.python_version()}; {args.rules:,} rules, one file of "
                  f"{len(text.splitlines()):,} lines changed each time")
            times = []
            for n in range(args.reloads):
                changed.write_text(text + f"\n# changed {n}\n", encoding="utf-8")
                seconds, size, status = reload_once(base)
                if status != "reloaded":
                    raise SystemExit(f"reload {n + 1} did not swap in a new set")
                times.append(seconds)
            print(f"reload to serving, s: {', '.join(f'{t:.2f}' for t in times)}")
            print(f"median {statistics.median(times):.2f} s, slowest {max(times):.2f} s; "
                  f"response {size / 1024:.0f} KB; server resident {_rss_mb(process.pid):.0f} MB")
        finally:
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
