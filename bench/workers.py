"""/decide with `engine serve --workers 2` against one worker, in the same run, for sizing a replica.

Starts both servers on loopback, then alternates rounds between them with
bench/http.py's load generator, and reports requests/s, the ratio of two
workers to one per round, the CPU share of the servers and of the load
generator (one Python process: when it is near a full core, it is what
limits the figures), and each server's memory (RSS of all its processes):

    python bench/workers.py --rounds 3 --duration 8 --json workers.json
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would shadow the standard library's http package: drop this folder from the path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import datetime as dt
import importlib.util
import json
import os
import statistics
from typing import Any


def _bench_http() -> Any:
    spec = importlib.util.spec_from_file_location("bench_http", _HERE / "http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, MB (Linux /proc)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _rss_mb(int(child))
    except (OSError, ValueError):
        pass
    return total


def main(argv: list[str] | None = None) -> int:
    bench = _bench_http()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=str(bench.REPO / "policies"))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=40000, help="stop each run after this many requests")
    parser.add_argument("--duration", type=float, default=8.0, help="... or after this many seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unique-ids", action="store_true", help="a new requester.id each time: no cache hits")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    requests = bench.example_requests(Path(args.policy))
    servers = {}
    try:
        for workers in (1, 2):
            port = bench._free_port()
            command = [sys.executable, "-m", "engine", "serve", args.policy, "--host", bench.HOST, "--port",
                       str(port), "--no-watch", "--log-level", "warning", "--workers", str(workers)]
            servers[workers] = (bench._start(command, port), port)
        idle = {workers: round(_rss_mb(process.pid), 1) for workers, (process, _) in servers.items()}
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers, (process, port) in servers.items():
                bodies = bench.Bodies("/decide", requests, 0, args.unique_ids)
                row = bench.measure(process, port, bodies, args.connections, args.requests, args.duration, args.warmup)
                row["rss_mb"] = round(_rss_mb(process.pid), 1)
                runs[workers].append(row)
    finally:
        for process, _ in servers.values():
            bench._stop(process)
    ratios = [two["requests_per_s"] / one["requests_per_s"] for one, two in zip(runs[1], runs[2])]
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "load_average": os.getloadavg()[0], "http_stack": bench._http_stack()},
        "settings": vars(args) | {"distinct_requests": len(requests)},
        "idle_rss_mb": idle, "runs": runs,
        "ratio_rounds": [round(r, 3) for r in ratios], "ratio": round(statistics.median(ratios), 3),
    }
    print(f"nproc {os.cpu_count()}, {args.connections} connections, load average "
          f"{results['machine']['load_average']:.2f} at the start; idle RSS MB: 1 worker {idle[1]}, 2 workers {idle[2]}")
    print(f"{'workers':<9}{'round':>6}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'CPU server / client':>21}{'RSS MB':>8}")
    for workers, rows in runs.items():
        for number, row in enumerate(rows, 1):
            print(f"{workers:<9}{number:>6}{row['requests_per_s']:>12,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                  f"{row['errors']:>8}{row['server_cpu_share']:>14.0%} /{row['client_cpu_share']:>4.0%}"
                  f"{row['rss_mb']:>8.0f}")
    print(f"2 workers / 1 worker, /decide requests/s: median {results['ratio']:.2f} "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
