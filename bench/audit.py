"""Benchmarks of the audit trail: what recording costs `/decide`, and how fast a large trail verifies.

    python bench/audit.py throughput --duration 5 --rounds 3   # off / file / PostgreSQL, same run
    python bench/audit.py verify --size 1G                     # generate a keyed trail, then verify it

`throughput` starts three `engine serve` processes on the example policies
(auditing off; a file trail with an audit key; a PostgreSQL trail in a
database made for the run and dropped after) and drives them in alternating
rounds with the load generator of bench/http.py, reporting each as a ratio to
auditing off. `verify` writes a trail of the given size (under a temporary
directory, removed afterwards) and times `engine audit verify` on it, with its
peak resident memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY = "benchmark audit key"


def _http_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_http", REPO / "bench" / "http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def throughput(args: argparse.Namespace) -> None:
    import psycopg

    http = _http_bench()
    requests = http.example_requests(REPO / "policies")
    work = Path(tempfile.mkdtemp(prefix="engine-audit-bench-"))
    (work / "key").write_text(KEY)
    database = f"engine_audit_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    trails = {"off": None, "file": str(work / "decisions.jsonl"),
              "postgresql": f"postgresql://postgres@127.0.0.1:5432/{database}"}
    servers: dict[str, tuple[Any, int]] = {}
    try:
        for name, trail in trails.items():
            port = http._free_port()
            command = [sys.executable, "-m", "engine", "serve", str(REPO / "policies"), "--host", http.HOST,
                       "--port", str(port), "--no-watch", "--log-level", "warning"]
            if trail:
                command += ["--audit-log", trail, "--audit-key-file", str(work / "key")]
            servers[name] = (http._start(command, port), port)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trails}
        for _ in range(args.rounds):
            for name, (process, port) in servers.items():
                bodies = http.Bodies("/decide", requests, 0, True)
                runs[name].append(http.measure(process, port, bodies, args.connections, 10**9, args.duration,
                                               args.warmup))
    finally:
        for process, _ in servers.values():
            http._stop(process)
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
    verified = subprocess.run([sys.executable, "-m", "engine", "audit", "verify", trails["file"] or "",
                               "--key-file", str(work / "key")], capture_output=True, text=True, cwd=REPO, check=False)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.connections} connections, {args.duration:g} s x "
          f"{args.rounds} rounds; unique requester ids (no cache hits)")
    print("| trail | requests/s (median round) | rounds | ratio to off (per round) | p50 ms | p99 ms "
          "| server CPU µs/request | CPU ratio to off |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rounds in runs.items():
        middle = sorted(rounds, key=lambda row: row["requests_per_s"])[len(rounds) // 2]
        ratios = [row["requests_per_s"] / off["requests_per_s"] for row, off in zip(rounds, runs["off"])]
        each = ", ".join(f"{row['requests_per_s']:,.0f}" for row in rounds)
        shares = ", ".join(f"{ratio:.0%}" for ratio in ratios)
        cpu = statistics.median(row["server_cpu_us_per_request"] for row in rounds)
        cpu_off = statistics.median(row["server_cpu_us_per_request"] for row in runs["off"])
        print(f"| {name} | {middle['requests_per_s']:,.0f} | {each} | {statistics.median(ratios):.0%} ({shares}) | "
              f"{middle['p50_ms']} | {middle['p99_ms']} | {cpu:.0f} | {cpu_off / cpu:.0%} |")
    print(f"file trail verified: {verified.stdout.strip() or verified.stderr.strip()}")


def _generate(path: Path, size: int, key: bytes) -> int:
    """A keyed trail of about `size` bytes, written as the service writes it (4 instances interleaved)."""
    from engine.service.audit.checkpoints import make_checkpoint
    from engine.service.audit.entries import GENESIS, Hasher, seal

    hasher = Hasher(key)
    chains = {f"bench-{n}": (0, GENESIS) for n in range(4)}
    names = list(chains)
    count = written = 0
    template = {"kind": "decision", "caller": "case_system", "date": "2025-06-01", "decision": "permit",
                "reasons": ["child_protection"], "obligations": [{"name": "audit", "args": []}],
                "policy_version": "sha256:0123456789abcdef", "alg": hasher.alg,
                "request": {"requester": {"role": "social_worker", "agency": "council", "id": ""},
                            "resource": {"id": "", "category": "health", "classification": "official",
                                         "owner": "nhs"},
                            "action": "share", "purpose": "safeguarding.children",
                            "context": {"date": "2025-06-01", "risk_of_harm": True}}}
    with path.open("wb", buffering=1 << 22) as out:
        while written < size:
            instance = names[count % 4]
            seq, previous = chains[instance]
            count += 1
            template["request"]["requester"]["id"] = f"u-{count}"
            template["request"]["resource"]["id"] = f"child-{count % 9973}"
            line, digest = seal({**template, "instance": instance, "seq": seq + 1, "prev_hash": previous,
                                 "decision_id": f"{count:032x}", "time": f"2025-06-01T09:00:00.{count % 10**6:06d}Z"},
                                hasher)
            chains[instance] = (seq + 1, digest)
            out.write(line)
            written += len(line)
    with open(f"{path}.checkpoints", "wb") as out:
        for instance, (seq, digest) in chains.items():
            out.write(make_checkpoint(instance, seq, digest, time.time(), hasher))
    return count


def verify(args: argparse.Namespace) -> None:
    from engine.service.audit.settings import parse_size

    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="engine-audit-verify-") as work:
        path = Path(work) / "decisions.jsonl"
        started = time.perf_counter()
        count = _generate(path, size, KEY.encode())
        made = time.perf_counter() - started
        actual = path.stat().st_size
        env = {**os.environ, "ENGINE_AUDIT_KEY": KEY, "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "engine", "audit", "verify", str(path)], capture_output=True,
                                text=True, env=env, cwd=REPO, check=False)
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    print(json.dumps({"bytes": actual, "entries": count, "generate_s": round(made, 1),
                      "verify_s": round(elapsed, 1), "mb_per_s": round(actual / 1e6 / elapsed, 1),
                      "verify_cpu_s": round(cpu, 1), "mb_per_cpu_s": round(actual / 1e6 / cpu, 1),
                      "peak_rss_mb": round(peak, 1), "exit": result.returncode,
                      "output": result.stdout.strip()[-200:], "load_average": os.getloadavg()[0]}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("throughput")
    run.add_argument("--connections", type=int, default=32)
    run.add_argument("--duration", type=float, default=5.0)
    run.add_argument("--warmup", type=float, default=1.0)
    run.add_argument("--rounds", type=int, default=3)
    check = actions.add_parser("verify")
    check.add_argument("--size", default="1G")
    args = parser.parse_args(argv)
    (throughput if args.action == "throughput" else verify)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
