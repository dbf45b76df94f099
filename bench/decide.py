"""How fast the engine decides, against generated realistic sets of 10 to 10,000 rules, and Cedar.

    python bench/decide.py [--quick] [--sizes 10,100,1000,10000] [--requests N] [--no-cedar] [--profile]

For each size, bench/generate.py writes a realistic set (deny-overrides) and a
request mix (about 40% permitted, many near misses), and a fresh interpreter
per size measures, so sizes do not share memory or caches:

  - load: what engine.load() does with the files (parse, check, compile), stage
    by stage, inside engine.pipeline.loading() as engine.load() is, seconds;
  - memory: peak resident set size of that interpreter once the set is loaded
    (before any request is read or decided), and how much loading added;
  - uncached: Policy.decide(request, use_cache=False), timed one request at a
    time with perf_counter_ns: median, p99 and mean microseconds;
  - uncached + to_dict: the same, and Decision.to_dict() of each decision, as
    the HTTP service does: a decision's near misses and summary are computed
    when first read, so this is where they are paid for;
  - cached: the same requests again once every one is in the cache (all hits),
    alone and with to_dict();
  - Cedar: the same rules translated to Cedar (bench/generate.py to_cedar),
    decided with cedarpy.is_authorized_batch over a PolicySet and an Entities
    handle parsed once, batches of 500, as many batches as fit a time budget.
    Every request Cedar decides is checked against our decision; mismatches are
    counted and the ratio is our mean over Cedar's mean per decision. Cedar's
    floor is the same batches against one policy that permits everything: what
    cedarpy costs per request before any rule is looked at.

Targets (uncached, one thread): median under 10 us at 1,000 rules; 10,000 rules
within 2x of 1,000; cached under 2 us; 10,000 rules in under 300 MB.
This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CEDAR_BATCH = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10-1,000, 2,000 requests, short Cedar budget")
    parser.add_argument("--sizes", help="comma-separated rule counts (default 10,100,1000,10000)")
    parser.add_argument("--requests", type=int, help="requests per size (default 20,000; quick 2,000)")
    parser.add_argument("--cedar-seconds", type=float, help="time budget for Cedar per size (default 20; quick 3)")
    parser.add_argument("--no-cedar", action="store_true")
    parser.add_argument("--analyse-up-to", type=int,
                        help="run the checker's rule analysis on sets up to this many rules (default 1,000; quick 100)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where uncached time goes (cProfile, top functions) for each size")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker)))
        return 0
    sizes = [int(s) for s in (args.sizes or ("10,100,1000" if args.quick else "10,100,1000,10000")).split(",")]
    count = args.requests or (2_000 if args.quick else 20_000)
    budget = 0.0 if args.no_cedar else (args.cedar_seconds or (3.0 if args.quick else 20.0))
    analyse_up_to = args.analyse_up_to if args.analyse_up_to is not None else (100 if args.quick else 1000)
    print(machine())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            directory = prepare(Path(tmp) / str(size), size, count, budget, size <= analyse_up_to, args.profile)
            done = subprocess.run([sys.executable, __file__, "--worker", str(directory)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                return 1
            results.append(json.loads(done.stdout))
            print(f"  {size} rules measured", file=sys.stderr)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{count:,} requests per size, each timed alone (perf_counter_ns); CPU is thread time over the loop")
    print(table(results))
    print(verdicts(results))
    for result in results:
        if "profile" in result:
            print(f"\nwhere uncached time goes at {result['rules']:,} rules:\n{result['profile']}")
    return 0 if all(r["cedar_mismatches"] == 0 for r in results) else 1


def machine() -> str:
    return (f"machine: {os.cpu_count()} cpus ({os.sched_getaffinity(0).__len__()} usable), "
            f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}")


# --- the parent: generate each size's set, requests and Cedar translation ------------------


def prepare(directory: Path, size: int, count: int, cedar_seconds: float, analyse: bool, profile: bool) -> Path:
    from generate import cedar_request, realistic_model, request_mix, to_cedar

    model = realistic_model(size)
    model.write(directory / "policies")
    requests = request_mix(model, count)
    (directory / "requests.json").write_text(json.dumps(requests))
    config = {"rules": size, "requests": count, "cedar_seconds": cedar_seconds, "analyse": analyse,
              "profile": profile}
    if cedar_seconds:
        policies, entities = to_cedar(model)
        (directory / "policies.cedar").write_text(policies)
        (directory / "entities.json").write_text(json.dumps(entities))
        (directory / "cedar_requests.json").write_text(json.dumps([cedar_request(model.vocab, r) for r in requests]))
    (directory / "config.json").write_text(json.dumps(config))
    return directory


# --- the worker: one size, in a fresh interpreter ----------------------------------------------


def measure(directory: Path) -> dict:
    config = json.loads((directory / "config.json").read_text())
    before = _rss_mb()
    policy, stages = load_by_stages(directory / "policies", config["analyse"], cache_size=10 * config["requests"])
    loaded = _rss_mb()
    load_peak = _status_mb("VmHWM")
    requests = json.loads((directory / "requests.json").read_text())
    for request in requests[:1000]:
        policy.decide(request, use_cache=False)  # warm up
    cpu = time.thread_time_ns()
    uncached = _time_each(policy, requests, use_cache=False)
    cpu = time.thread_time_ns() - cpu
    uncached_dict = _time_each(policy, requests, use_cache=False, to_dict=True)
    decisions = [policy.decide(r, use_cache=False) for r in requests]
    for request in requests:
        policy.decide(request)  # fill the cache
    cached = _time_each(policy, requests, use_cache=True)
    cached_dict = _time_each(policy, requests, use_cache=True, to_dict=True)
    result = {
        "rules": config["rules"], "requests": len(requests), "stages": stages,
        "peak_rss_mb": load_peak, "load_rss_mb": loaded - before,
        "uncached": _summary(uncached) | {"cpu_mean_us": cpu / len(requests) / 1000},
        "uncached_dict": _summary(uncached_dict),
        "cached": _summary(cached), "cached_dict": _summary(cached_dict), "cache": policy.cache_stats(),
        "permitted": sum(d.permitted for d in decisions) / len(decisions),
        "no_rule_applied": sum(not d.reasons for d in decisions) / len(decisions),
    }
    result.update(_cedar(directory, config, [d.permitted for d in decisions]))
    if config["profile"]:
        result["profile"] = _profile(policy, requests)
    return result


def _profile(policy, requests: list[dict]) -> str:
    """The functions uncached decisions spend most time in, by own time (after the timed runs)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for request in requests:
        policy.decide(request, use_cache=False)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def load_by_stages(path: Path, analyse: bool, cache_size: int):
    """What engine.load() does, stage by stage and timed: read and parse, check, compile.

    Inside engine.pipeline.loading(), as engine.load() is, so that the set's
    objects sit in the heap as they do for its users. The checker's rule
    analysis pass is timed on its own, and only when `analyse`: on large sets
    it takes far longer than everything else together.
    """
    from engine import checker
    from engine.compiler import compile_policy
    from engine.loader import load_set
    from engine.pipeline import loading
    from engine.policy import Policy

    stages: dict[str, float | None] = {}
    with loading():
        clock = time.perf_counter()
        policy_set, found = load_set(path)
        stages["parse_s"], clock = time.perf_counter() - clock, time.perf_counter()
        passes = list(checker.PASSES)
        checker.PASSES[:] = [p for p in passes if p[0] != "analysis"]
        try:
            vocab, checked = checker.check(policy_set)
        finally:
            checker.PASSES[:] = passes
        stages["check_s"], clock = time.perf_counter() - clock, time.perf_counter()
        stages["analysis_s"] = None
        if analyse:
            found += dict(passes)["analysis"](checker.Context.of(policy_set))
            stages["analysis_s"], clock = time.perf_counter() - clock, time.perf_counter()
        errors = [d for d in found + checked if d.is_error]
        if errors:
            raise SystemExit("\n".join(d.render() for d in errors[:5]))
        compiled = compile_policy(policy_set, vocab)
        stages["compile_s"] = time.perf_counter() - clock
        warnings = [d for d in found + checked if not d.is_error]
        policy = Policy(policy_set, compiled, warnings, cache_size=cache_size, cache_ttl=3600.0)
    return policy, stages


def _time_each(policy, requests: list[dict], *, use_cache: bool, to_dict: bool = False) -> list[int]:
    clock = time.perf_counter_ns
    decide = policy.decide
    timings = []
    if to_dict:
        for request in requests:
            start = clock()
            decide(request, use_cache=use_cache).to_dict()
            timings.append(clock() - start)
        return timings
    for request in requests:
        start = clock()
        decide(request, use_cache=use_cache)
        timings.append(clock() - start)
    return timings


def _summary(timings: list[int]) -> dict:
    ordered = sorted(timings)
    return {"p50_us": ordered[len(ordered) // 2] / 1000, "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
            "mean_us": statistics.fmean(ordered) / 1000}


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: Linux carries that
    across exec, so a worker would report its parent's size before the exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


def _cedar(directory: Path, config: dict, permitted: list[bool]) -> dict:
    if not config["cedar_seconds"]:
        return {"cedar_us": None, "cedar_compared": 0, "cedar_mismatches": 0, "cedar_load_s": None,
                "cedar_floor_us": None}
    import cedarpy

    started = time.perf_counter()
    policies = cedarpy.PolicySet.from_str((directory / "policies.cedar").read_text())
    entities = cedarpy.Entities.from_json_str((directory / "entities.json").read_text())
    load_seconds = time.perf_counter() - started
    requests = json.loads((directory / "cedar_requests.json").read_text())
    spent, compared, mismatches = 0.0, 0, 0
    for start in range(0, len(requests), CEDAR_BATCH):
        batch = requests[start:start + CEDAR_BATCH]
        began = time.perf_counter()
        answers = cedarpy.is_authorized_batch(batch, policies, entities)
        spent += time.perf_counter() - began
        for ours, theirs in zip(permitted[start:], answers):
            # An evaluation error in Cedar would be a fault of the translation: count it too.
            mismatches += ours != theirs.allowed or bool(theirs.diagnostics.errors)
        compared += len(batch)
        if spent > config["cedar_seconds"]:
            break
    # Cedar's floor here: one policy that permits everything, same entities and requests.
    trivial = cedarpy.PolicySet.from_str("permit(principal, action, resource);")
    began = time.perf_counter()
    cedarpy.is_authorized_batch(requests[:CEDAR_BATCH], trivial, entities)
    floor = (time.perf_counter() - began) / len(requests[:CEDAR_BATCH]) * 1e6
    return {"cedar_us": spent / compared * 1e6, "cedar_compared": compared, "cedar_mismatches": mismatches,
            "cedar_load_s": load_seconds, "cedar_floor_us": floor}


# --- the report ----------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    head = ("| rules | load s: parse + check + compile | rule analysis s | peak RSS MB after load (load adds) "
            "| uncached p50 / p99 / mean µs | uncached CPU µs | uncached + to_dict p50 / p99 / mean µs "
            "| cached p50 / p99 µs | cached + to_dict p50 / p99 µs | permitted | no rule applied "
            "| Cedar µs/decision (floor) | ours ÷ Cedar | Cedar agrees | Cedar load s | our load ÷ Cedar load |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        u, c, st = r["uncached"], r["cached"], r["stages"]
        ud, cd = r["uncached_dict"], r["cached_dict"]
        load = f"{st['parse_s'] + st['check_s'] + st['compile_s']:.2f} = {st['parse_s']:.2f} + {st['check_s']:.2f} + {st['compile_s']:.2f}"
        analysis = "not run" if st["analysis_s"] is None else f"{st['analysis_s']:.2f}"
        cedar = "—" if r["cedar_us"] is None else f"{r['cedar_us']:,.1f} ({r['cedar_floor_us']:.0f})"
        ratio = "—" if r["cedar_us"] is None else f"{u['mean_us'] / r['cedar_us']:.3f}"
        agrees = "—" if r["cedar_us"] is None else f"{r['cedar_compared'] - r['cedar_mismatches']:,}/{r['cedar_compared']:,}"
        # Load against load: ours is parse + check + compile (rule analysis apart), Cedar's is
        # parsing the same rules translated and its entities, both from text already in memory.
        ours = st["parse_s"] + st["check_s"] + st["compile_s"]
        cedar_load = "—" if r["cedar_load_s"] is None else f"{r['cedar_load_s']:.3f}"
        load_ratio = "—" if r["cedar_load_s"] is None else f"{ours / r['cedar_load_s']:.1f}"
        lines.append(
            f"| {r['rules']:,} | {load} | {analysis} | {r['peak_rss_mb']:.0f} ({r['load_rss_mb']:.0f}) "
            f"| {u['p50_us']:.1f} / {u['p99_us']:.1f} / {u['mean_us']:.1f} | {u['cpu_mean_us']:.1f} "
            f"| {ud['p50_us']:.1f} / {ud['p99_us']:.1f} / {ud['mean_us']:.1f} "
            f"| {c['p50_us']:.2f} / {c['p99_us']:.2f} | {cd['p50_us']:.2f} / {cd['p99_us']:.2f} "
            f"| {r['permitted']:.0%} | {r['no_rule_applied']:.0%} "
            f"| {cedar} | {ratio} | {agrees} | {cedar_load} | {load_ratio} |")
    return "\n".join(lines)


def verdicts(results: list[dict]) -> str:
    by_size = {r["rules"]: r for r in results}
    lines = []

    def verdict(ok: bool, text: str) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {text}")

    if 1000 in by_size:
        p50 = by_size[1000]["uncached"]["p50_us"]
        verdict(p50 < 10, f"uncached median at 1,000 rules {p50:.1f} µs (target < 10)")
    if 1000 in by_size and 10000 in by_size:
        ratio = by_size[10000]["uncached"]["p50_us"] / by_size[1000]["uncached"]["p50_us"]
        verdict(ratio <= 2, f"10,000 rules / 1,000 rules median {ratio:.2f}x (target <= 2x)")
    worst = max(r["cached"]["p50_us"] for r in results)
    verdict(worst < 2, f"cached median, worst size {worst:.2f} µs (target < 2)")
    if 10000 in by_size:
        rss = by_size[10000]["peak_rss_mb"]
        verdict(rss < 300, f"peak RSS at 10,000 rules {rss:.0f} MB (target < 300)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
