"""A fleet on loopback: replicas of `engine serve --bundle URL`, a bundle server, a round-robin client.

Publishes, in turn, a new signed bundle, a bundle whose set has errors, a
bundle signed by the wrong key, and the original again, while one client
sends decisions to the replicas in turn. Reports failed requests, decisions
by any revision that was not published as good, replicas that went back to
an older revision, and the convergence time of each good publication: from
the moment the bundle server has the new bundle to the first decision by it
from the last replica.

    python bench/fleet.py                          # 3 replicas, polling every 0.5 s
    python bench/fleet.py --replicas 3 --interval 1 --rounds 3 --json fleet.json

tests/test_fleet.py runs it briefly; BENCHMARKS.md has the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would shadow the standard library's http package: drop this folder from the path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPO = _HERE.parent
sys.path.insert(0, str(REPO))

from engine.bundle import build_bundle, load_bundle, pack, read_bundle

HOST = "127.0.0.1"  # loopback only


class BundleServer:
    """A static HTTP server with one bundle at /bundle.tar.gz, answering If-None-Match with 304.

    It counts full downloads and 304s, and can be taken down and brought back on the same port.
    """

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.downloads = 0
        self.not_modified = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/bundle.tar.gz"

    def publish(self, data: bytes) -> None:
        self.data = data

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = outer.data
                if self.path != "/bundle.tar.gz" or data is None:
                    self.send_error(404)
                    return
                etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    outer.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                outer.downloads += 1
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- bundles -----------------------------------------------------------------------


def _keys() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def _public_pem(key: Any, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def _variant(source: Path, into: Path, note: str) -> Path:
    """A copy of the set with a comment added: the same rules, a different revision."""
    shutil.copytree(source, into, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    first = min(into.rglob("*.policy"))
    first.write_text(first.read_text(encoding="utf-8") + f"\n# {note}\n", encoding="utf-8")
    return into


def make_bundles(policy_dir: Path, work: Path) -> dict[str, Any]:
    """The bundles published: original and new (signed), broken (signed, errors), forged (wrong key)."""
    key, wrong = _keys()
    original = build_bundle(_variant(policy_dir, work / "original", "original"), label="original", private_key=key)
    new = build_bundle(_variant(policy_dir, work / "new", "new"), label="new", private_key=key)
    forged = build_bundle(_variant(policy_dir, work / "forged", "forged"), label="forged", private_key=wrong)
    # The builder refuses a set with errors, so the broken bundle is packed by hand, signed by the
    # right key: only checking the set itself can catch it.
    bundle = read_bundle(new.data)
    files = dict(bundle.files)
    first = bundle.manifest.policy_files[0].path
    files[first] += b"\npermit broken {\n  role no_such_role\n}\n"
    entries = tuple(type(f)(f.path, hashlib.sha256(files[f.path]).hexdigest(), len(files[f.path]))
                    for f in bundle.manifest.files)
    manifest = type(bundle.manifest)(revision="sha256:brokenbroken0000", label="broken", title=None,
                                     built_at=bundle.manifest.built_at, files=entries)
    broken = pack(manifest, files, key)
    load_bundle(read_bundle(new.data, key.public_key()))  # the good ones are good
    return {"key": _public_pem(key, work / "signing.pub.pem"),
            "original": (original.data, original.manifest.revision), "new": (new.data, new.manifest.revision),
            "broken": (broken, "sha256:brokenbroken0000"), "forged": (forged.data, forged.manifest.revision)}


# --- replicas and load -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Replica:
    """`engine serve --bundle URL` in a child process on a free loopback port."""

    def __init__(self, url: str, key: Path, interval: float, workers: int, log: Path):
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "OTEL_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["ENGINE_DATE_CALLERS"] = "*"  # the policy tests' requests decide as of their own dates
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine", "serve", "--bundle", url, "--bundle-key", str(key),
                 "--bundle-interval", str(interval), "--workers", str(workers), "--host", HOST,
                 "--port", str(self.port), "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def revision(self) -> str | None:
        try:
            status, body = _get(self.port, "/readyz", 1.0)
        except OSError:
            return None
        return json.loads(body).get("policy_version") if status == 200 else None

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(_get(self.port, "/bundle/status")[1])
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RoundRobin(threading.Thread):
    """One client sending /decide to each replica in turn over keep-alive connections."""

    def __init__(self, ports: list[int], body: bytes):
        super().__init__(daemon=True)
        self.ports = ports
        self.body = body
        self.stopping = threading.Event()
        self.answers: list[tuple[float, int, int, str | None]] = []  # time, replica, status, revision
        self.failures: list[str] = []

    def run(self) -> None:
        connections = [http.client.HTTPConnection(HOST, port, timeout=10) for port in self.ports]
        headers = {"Content-Type": "application/json"}
        index = 0
        while not self.stopping.is_set():
            replica = index % len(self.ports)
            index += 1
            try:
                connections[replica].request("POST", "/decide", self.body, headers)
                response = connections[replica].getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as err:
                self.failures.append(f"replica {replica}: {err!r}")
                connections[replica].close()
                continue
            revision = json.loads(payload).get("policy_version") if response.status == 200 else None
            if response.status != 200:
                self.failures.append(f"replica {replica}: {response.status} {payload[:200]!r}")
            self.answers.append((time.monotonic(), replica, response.status, revision))
        for connection in connections:
            connection.close()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _request_body(policy_dir: Path) -> bytes:
    """A request from the set's own tests, so every revision can decide it."""
    import yaml

    for path in sorted(policy_dir.glob("*.test.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = document.get("defaults", {})
        for case in document.get("cases", []):
            request = {**case["request"], "context": {**defaults.get("context", {}),
                                                      **case["request"].get("context", {})}}
            return json.dumps(request, default=str).encode()
    raise SystemExit(f"no test case under {policy_dir} to take a request from")


# --- the scenario ----------------------------------------------------------------------


def run_scenario(policy_dir: Path, work: Path, *, replicas: int = 3, interval: float = 0.5, workers: int = 1,
                 rounds: int = 1, settle: float | None = None) -> dict[str, Any]:
    """Run the publications against a fleet and return what the client saw."""
    bundles = make_bundles(policy_dir, work)
    server = BundleServer()
    server.publish(bundles["original"][0])
    fleet = [Replica(server.url, bundles["key"], interval, workers, work / f"replica-{i}.log") for i in range(replicas)]
    settle = settle if settle is not None else interval * 3 + 0.5
    good = {bundles["original"][1], bundles["new"][1]}
    convergence: list[float] = []
    events: list[dict[str, Any]] = []
    load = RoundRobin([replica.port for replica in fleet], _request_body(policy_dir))
    try:
        _wait(lambda: all(r.revision() == bundles["original"][1] for r in fleet), 60, "every replica to be ready")
        load.start()
        _wait(lambda: len(load.answers) >= replicas * 3, 30, "the client's first answers")
        for _ in range(rounds):
            for name in ("new", "broken", "forged", "original"):
                data, revision = bundles[name]
                before = [r.status()["refusals"] for r in fleet]
                published = time.monotonic()
                server.publish(data)
                if revision in good:
                    _wait(lambda r=revision, p=published: _all_answered(load, replicas, r, p), 60,  # type: ignore[misc]
                          f"the fleet to serve {name}")
                    seconds = max(_first(load, i, revision, published) for i in range(replicas)) - published
                    convergence.append(seconds)
                    events.append({"published": name, "revision": revision, "convergence_s": round(seconds, 3)})
                else:
                    _wait(lambda b=before: all(r.status()["refusals"] > n for r, n in zip(fleet, b)), 60,  # type: ignore[misc]
                          f"every replica to refuse the {name} bundle")
                    time.sleep(settle)
                    events.append({"published": name, "revision": revision, "refused_by": replicas,
                                   "reason": fleet[0].status()["last_refused"]["reason"].splitlines()[0]})
    finally:
        load.stopping.set()
        if load.is_alive():
            load.join(15)
        statuses = [_safe_status(r) for r in fleet]
        for replica in fleet:
            replica.stop()
        server.stop()
    bad = [a for a in load.answers if a[2] == 200 and a[3] not in good]
    return {
        "replicas": replicas, "workers": workers, "interval_s": interval, "rounds": rounds,
        "requests": len(load.answers), "failed_requests": len(load.failures), "failures": load.failures[:5],
        "decisions_by_unpublished_or_refused_revision": len(bad),
        "replicas_that_went_back": _went_back(load, replicas, events),
        "convergence_s": [round(c, 3) for c in convergence],
        "convergence_max_s": round(max(convergence), 3) if convergence else None,
        "convergence_median_s": round(statistics.median(convergence), 3) if convergence else None,
        "events": events, "downloads": server.downloads, "not_modified": server.not_modified,
        "final_status": statuses,
    }


def _first(load: RoundRobin, replica: int, revision: str, after: float) -> float:
    return min(t for t, r, _, rev in list(load.answers) if r == replica and rev == revision and t >= after)


def _all_answered(load: RoundRobin, replicas: int, revision: str, after: float) -> bool:
    seen = {r for t, r, _, rev in list(load.answers) if rev == revision and t >= after}
    return len(seen) == replicas


def _went_back(load: RoundRobin, replicas: int, events: list[dict[str, Any]]) -> int:
    """Replicas that answered with an older revision after answering with a newer one."""
    order = [e["revision"] for e in events if "convergence_s" in e]
    count = 0
    for replica in range(replicas):
        revisions = [rev for _, r, status, rev in load.answers if r == replica and status == 200]
        changes = [rev for i, rev in enumerate(revisions) if i == 0 or rev != revisions[i - 1]]
        count += changes[1:] != order[:len(changes) - 1]
    return count


def _safe_status(replica: Replica) -> dict[str, Any]:
    try:
        return replica.status()
    except (OSError, ValueError) as err:
        return {"error": repr(err)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=str(REPO / "policies"), help="policy directory (default: policies/)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.5, help="each replica's --bundle-interval")
    parser.add_argument("--workers", type=int, default=1, help="each replica's --workers")
    parser.add_argument("--rounds", type=int, default=1, help="publish the four bundles this many times")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="engine-fleet-"))
    try:
        results = run_scenario(Path(args.policy), work, replicas=args.replicas, interval=args.interval,
                               workers=args.workers, rounds=args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["when"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                          "load_average": os.getloadavg()[0]}
    print(f"{results['replicas']} replicas x {results['workers']} workers, polling every {results['interval_s']}s: "
          f"{results['requests']} requests, {results['failed_requests']} failed, "
          f"{results['decisions_by_unpublished_or_refused_revision']} by an unpublished or refused revision, "
          f"{results['replicas_that_went_back']} replicas went back")
    print(f"convergence (publish -> last replica deciding by it): median {results['convergence_median_s']}s, "
          f"max {results['convergence_max_s']}s over {len(results['convergence_s'])} publications")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
