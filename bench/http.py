"""HTTP benchmark of the decision service against a bare FastAPI endpoint and a raw ASGI one.

Starts `engine serve`, a bare FastAPI app (same server, same body handling, a
constant answer) and a raw ASGI app (no framework: it reads the body and
answers a constant, the ceiling of the server itself) as uvicorn processes on
loopback with the same settings, then drives each with a
bounded asyncio load generator over keep-alive connections, and reports
requests/s, decisions/s and latency percentiles:

    python bench/http.py                      # example policies, 32 connections
    python bench/http.py --requests 50000 --duration 20 --json bench-http.json

The requests are the example policies' test cases (policies/*.test.yaml),
cycled; --unique-ids gives each request its own requester.id, so that the
decision cache does not answer them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: drop its folder from the path before anything
# imports the standard library's http package (hence the imports below it).
# ruff: noqa: E402
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import time
from typing import Any

REPO = _HERE.parent
sys.path.insert(0, str(REPO))

from fastapi import Request  # module level: FastAPI resolves the bare endpoint's annotations here
from starlette.responses import Response

HOST = "127.0.0.1"  # loopback only


# --- the bare endpoint -------------------------------------------------------------------


def bare_app() -> Any:
    """A FastAPI app that reads and parses the body like /decide, then answers a constant."""
    from fastapi import FastAPI

    from engine.service.bodies import read_json, require_object
    from engine.service.errors import install_handlers, json_response

    app = FastAPI()
    install_handlers(app)
    answer = {"decision": "permit", "decision_id": "0", "policy_version": "sha256:0", "reasons": [],
              "obligations": [], "near_misses": [], "summary": "constant"}

    @app.post("/decide")
    async def decide(request: Request) -> Response:
        require_object(await read_json(request, 1024 * 1024), "a decision request")
        return json_response(answer)

    @app.get("/readyz")
    async def readyz() -> Response:
        return json_response({"status": "ready"})

    return app


RAW_ANSWER = json.dumps({"decision": "permit", "decision_id": "0", "policy_version": "sha256:0", "reasons": [],
                         "obligations": [], "near_misses": [], "summary": "constant"}).encode()
RAW_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(RAW_ANSWER)).encode())]


async def raw_app(scope: dict, receive: Any, send: Any) -> None:
    """The ceiling: a plain ASGI callable that reads the whole body and answers a constant."""
    if scope["type"] == "lifespan":
        while True:
            event = (await receive())["type"]
            await send({"type": event + ".complete"})
            if event == "lifespan.shutdown":
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] != "/decide" and scope["path"] != "/readyz":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": RAW_HEADERS})
    await send({"type": "http.response.body", "body": RAW_ANSWER})


def _serve_bare(port: int, raw: bool = False) -> None:
    import uvicorn

    uvicorn.run(raw_app if raw else bare_app(), host=HOST, port=port, access_log=False, log_level="warning")


# --- requests --------------------------------------------------------------------------------


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return over


def example_requests(policy_dir: Path) -> list[dict]:
    """Every valid request of the policy tests under policy_dir, defaults merged in."""
    import yaml

    import engine
    from engine.errors import RequestError

    policy = engine.load(str(policy_dir))
    requests = []
    for path in sorted(policy_dir.glob("*.test.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for case in document.get("cases", []):
            request = json.loads(json.dumps(_merge(document.get("defaults", {}), case["request"]), default=str))
            try:
                policy.decide(request)
            except RequestError:
                continue
            requests.append(request)
    return requests


def _http_request(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Bodies:
    """The raw HTTP requests to send, cycled; with unique ids, made on the fly."""

    def __init__(self, path: str, requests: list[dict], batch: int, unique: bool):
        self.path, self.requests, self.batch, self.unique = path, requests, batch, unique
        self.counter = 0
        self.fixed = [self._make(i) for i in range(len(requests))] if not unique else []

    def _body(self, index: int) -> Any:
        if not self.batch:
            request = self.requests[index % len(self.requests)]
            return self._stamp(request)
        chunk = [self._stamp(self.requests[(index + j) % len(self.requests)]) for j in range(self.batch)]
        return {"requests": chunk}

    def _stamp(self, request: dict) -> dict:
        if not self.unique:
            return request
        self.counter += 1
        return {**request, "requester": {**request["requester"], "id": f"bench-{self.counter}"}}

    def _make(self, index: int) -> bytes:
        return _http_request(self.path, json.dumps(self._body(index)).encode())

    def get(self, index: int) -> bytes:
        return self.fixed[index % len(self.fixed)] if self.fixed else self._make(index)


# --- the load generator ---------------------------------------------------------------------


async def _connection(bodies: Bodies, state: dict, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, state["port"])
    try:
        while state["sent"] < state["limit"] and time.perf_counter() < state["until"]:
            index = state["sent"]
            state["sent"] += 1
            payload = bodies.get(index)
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _drive(port: int, bodies: Bodies, connections: int, limit: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    state = {"port": port, "sent": 0, "limit": limit, "until": time.perf_counter() + seconds}
    started = time.perf_counter()
    await asyncio.gather(*(_connection(bodies, state, latencies, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    per = max(1, bodies.batch)
    return {"requests": len(latencies), "seconds": round(elapsed, 3), "errors": len(errors),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "decisions_per_s": round(len(latencies) * per / elapsed, 1),
            "p50_ms": round(pct(0.50), 3), "p99_ms": round(pct(0.99), 3),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else 0.0}


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and all its descendants (Linux /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _cpu_seconds(int(child))
    except (OSError, IndexError, ValueError):
        pass
    return total


def measure(server: subprocess.Popen, port: int, bodies: Bodies, connections: int, limit: int, seconds: float,
            warmup: float) -> dict:
    """Drive one server; also what it cost the server in CPU per request, which other load barely moves."""
    asyncio.run(_drive(port, bodies, connections, 10**9, warmup))
    before, client = _cpu_seconds(server.pid), time.process_time()
    result = asyncio.run(_drive(port, bodies, connections, limit, seconds))
    used = _cpu_seconds(server.pid) - before
    # A load generator near 100% of a core is what limits the figures, not the server.
    result["client_cpu_share"] = round((time.process_time() - client) / result["seconds"], 2)
    result["server_cpu_share"] = round(used / result["seconds"], 2)
    result["server_cpu_us_per_request"] = round(used / max(1, result["requests"]) * 1e6, 1)
    result["server_cpu_us_per_decision"] = round(used / max(1, result["requests"] * max(1, bodies.batch)) * 1e6, 2)
    return result


# --- servers ------------------------------------------------------------------------------


def _http_stack() -> str:
    """What uvicorn will run on: httptools and uvloop when installed, else h11 and asyncio."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn {http}/{loop}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start(command: list[str], port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "OTEL_"))}
    env["PYTHONPATH"] = str(REPO)
    env["ENGINE_DATE_CALLERS"] = "*"  # the generated requests decide as of fixed dates
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                sock.sendall(f"GET /readyz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                if b" 200 " in sock.recv(1024):
                    return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not become ready")


def _cache_figures(port: int) -> dict:
    """The service's decision-cache hits and misses so far (all workers), from its /metrics."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    found = {}
    for line in text.decode("utf-8", "replace").splitlines():
        for name in ("hits", "misses"):
            if line.startswith(f"engine_cache_{name}_total "):
                found[name] = int(float(line.split()[1]))
    hits, misses = found.get("hits", 0), found.get("misses", 0)
    return {"hits": hits, "misses": misses, "hit_rate": round(hits / max(1, hits + misses), 5)}


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=str(REPO / "policies"), help="policy directory (default: policies/)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=30000, help="stop each run after this many requests")
    parser.add_argument("--duration", type=float, default=10.0, help="... or after this many seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="measure each endpoint this many times, alternating")
    parser.add_argument("--batch", type=int, default=1000, help="requests per /decide/batch call")
    parser.add_argument("--batch-connections", type=int, default=4,
                        help="connections for /decide/batch (more only queue: one batch fills the server)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--unique-ids", action="store_true", help="a new requester.id each time: no cache hits")
    parser.add_argument("--audit-log", default=None, help="have the service write an audit trail here")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve-raw", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare or args.serve_raw:
        _serve_bare(args.serve_bare or args.serve_raw, raw=bool(args.serve_raw))
        return 0

    requests = example_requests(Path(args.policy))
    if not requests:
        raise SystemExit(f"no valid request among the policy tests (*.test.yaml) under {args.policy}")
    raw_port, bare_port, engine_port = _free_port(), _free_port(), _free_port()
    serve = [sys.executable, "-m", "engine", "serve", args.policy, "--host", HOST, "--port", str(engine_port),
             "--no-watch", "--log-level", "warning", "--workers", str(args.workers)]
    if args.audit_log:
        serve += ["--audit-log", args.audit_log]
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average": os.getloadavg()[0], "http_stack": _http_stack()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("serve_bare", "serve_raw")}
        | {"distinct_requests": len(requests)},
    }
    raw = _start([sys.executable, str(Path(__file__).resolve()), "--serve-raw", str(raw_port)], raw_port)
    bare = _start([sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port)], bare_port)
    service = _start(serve, engine_port)
    runs: dict[str, list[dict]] = {"raw": [], "bare": [], "decide": [], "batch": []}
    try:
        # Rounds alternate between the servers, so that a busy moment on the
        # machine does not fall on one of them only; the median round is reported.
        for _ in range(args.rounds):
            bodies = Bodies("/decide", requests, 0, args.unique_ids)
            runs["raw"].append(measure(raw, raw_port, bodies, args.connections, args.requests, args.duration,
                                       args.warmup))
            bodies = Bodies("/decide", requests, 0, args.unique_ids)
            runs["bare"].append(measure(bare, bare_port, bodies, args.connections, args.requests, args.duration,
                                        args.warmup))
            bodies = Bodies("/decide", requests, 0, args.unique_ids)
            runs["decide"].append(measure(service, engine_port, bodies, args.connections, args.requests, args.duration,
                                          args.warmup))
            batches = Bodies("/decide/batch", requests, args.batch, args.unique_ids)
            limit = max(1, args.requests // args.batch * 10)
            runs["batch"].append(measure(service, engine_port, batches, args.batch_connections, limit, args.duration,
                                         args.warmup))
        results["cache"] = _cache_figures(engine_port)
    finally:
        _stop(service)
        _stop(bare)
        _stop(raw)
    for name, rounds in runs.items():
        results[name] = sorted(rounds, key=lambda row: row["requests_per_s"])[len(rounds) // 2]
        results[name]["rounds_requests_per_s"] = [row["requests_per_s"] for row in rounds]
    # Each round measures the endpoints a few seconds apart: compare within rounds.
    for ceiling in ("bare", "raw"):
        pairs = list(zip(runs[ceiling], runs["decide"]))
        ratios = sorted(decide["requests_per_s"] / other["requests_per_s"] for other, decide in pairs)
        cpu = sorted(other["server_cpu_us_per_request"] / decide["server_cpu_us_per_request"] for other, decide in pairs)
        results[f"decide_vs_{ceiling}_rounds"] = [round(ratio, 3) for ratio in ratios]
        results[f"decide_vs_{ceiling}"] = round(statistics.median(ratios), 3)
        results[f"decide_vs_{ceiling}_cpu"] = round(statistics.median(cpu), 3)
    _report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def _report(results: dict, args: argparse.Namespace) -> None:
    machine = results["machine"]
    print(f"nproc {machine['nproc']}, Python {machine['python']}, {args.connections} connections "
          f"({args.batch_connections} for batches), {args.workers} worker{'s' * (args.workers != 1)}, "
          f"{results['settings']['distinct_requests']} distinct requests"
          f"{', unique ids (no cache hits)' if args.unique_ids else ''}; {machine['http_stack']}, "
          f"load average {machine['load_average']:.2f} at the start")
    print(f"{'endpoint':<26}{'requests/s':>12}{'decisions/s':>13}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'server CPU µs/decision':>24}{'CPU server/client':>19}")
    for name, label in (("raw", "raw ASGI /decide"), ("bare", "bare FastAPI /decide"), ("decide", "engine /decide"),
                        ("batch", f"engine /decide/batch x{args.batch}")):
        row = results[name]
        print(f"{label:<26}{row['requests_per_s']:>12,.0f}{row['decisions_per_s']:>13,.0f}"
              f"{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['errors']:>8}{row['server_cpu_us_per_decision']:>24.1f}"
              f"{row['server_cpu_share']:>13.0%} /{row['client_cpu_share']:>4.0%}")
    cache = results["cache"]
    print(f"decision cache: {cache['hits']:,} hits, {cache['misses']:,} misses ({cache['hit_rate']:.2%} hits, "
          f"/decide and batches together)")
    for ceiling, name in (("raw", "raw ASGI"), ("bare", "bare FastAPI")):
        print(f"/decide throughput is {results[f'decide_vs_{ceiling}']:.0%} of the {name} endpoint's (median of "
              f"rounds {', '.join(f'{r:.0%}' for r in results[f'decide_vs_{ceiling}_rounds'])}); "
              f"by server CPU per request, {results[f'decide_vs_{ceiling}_cpu']:.0%}")


if __name__ == "__main__":
    sys.exit(main())
