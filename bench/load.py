"""Benchmark loading a policy set stage by stage: parse, check, rule analysis, compile.

Generates realistic sets of 100 to 20,000 rules: a full vocabulary,
agreements, and rules with several clauses each (action, role, agency, purpose,
data up to, under, when, obligations, because), a hundred rules to a file.
With --adversarial, the example policies plus one file of N rules that differ
only in a threshold (every pair overlaps: the worst case of rule analysis).

    python bench/load.py                   # 100 to 20,000 rules
    python bench/load.py --sizes 1000 --repeat 5
    python bench/load.py --adversarial --sizes 1000 4000
    python bench/load.py --role-chain --sizes 1000 4000

Targets: 10,000 rules loaded (parse + check + rule analysis + compile) in
under 3 s cold; the adversarial 4,000-rule set in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import itertools

from engine import checker, loader

ROLES = 40
AGENCIES = 60
GROUPS = 12
AGREEMENTS = 20
RULES_PER_FILE = 100


def vocabulary(rng: random.Random) -> str:
    roles = "\n".join(
        f'  role_{i} "Role {i}"' + (f" : role_{rng.randrange(i)}" if i > 3 and rng.random() < 0.6 else "")
        for i in range(ROLES)
    )
    agencies = "\n".join(f'  agency_{i} "Agency number {i}"' for i in range(AGENCIES))
    groups = "\n".join(
        f"group group_{g} = {{ " + ", ".join(f"agency_{a}" for a in sorted(rng.sample(range(AGENCIES), 8))) + " }"
        for g in range(GROUPS)
    )
    return f"""\
policy "Benchmark partnership" {{
  version "1"
  combine deny-overrides
}}
actions {{ view, share, export, amend }}
roles {{
{roles}
}}
purposes {{
  safeguarding {{ children {{ early_help, child_protection }}, adults }}
  direct_care
  crime_prevention {{ mappa, domestic_abuse }}
  service_planning, research, marketing
}}
categories {{
  special_category {{ health, ethnicity, religion }}
  criminal_offence {{ criminal_record, police_intelligence }}
  social_care {{ child_case_file, adult_case_file }}
  education, housing, contact_details
}}
classifications public < official < official_sensitive < secret
agencies {{
{agencies}
}}
{groups}
attributes {{
  requester.vetted        bool default false
  requester.clearance     classification default official
  requester.team          string default "none"
  context.emergency       bool default false
  context.risk_of_harm    bool default false
  context.consent         one of {{ given, refused, not_sought }} default not_sought
  context.approved_by     role
  context.records         number default 1
  resource.subject_age    number
  resource.recorded_on    date
}}
"""


def agreements(rng: random.Random) -> str:
    out = []
    for i in range(AGREEMENTS):
        if i % 3:
            who = f"  parties group_{rng.randrange(GROUPS)}, agency_{rng.randrange(AGENCIES)}"
        else:
            who = f"  from group_{rng.randrange(GROUPS)}\n  to agency_{rng.randrange(AGENCIES)}"
        out.append(f'agreement dsa_{i} "Agreement {i}" {{\n{who}\n  valid 2024-04-01 to 2099-03-31\n'
                   f'  reference "REF-{i}"\n}}\n')
    return "\n".join(out)


PURPOSES = ["safeguarding.children.child_protection", "early_help", "adults", "direct_care", "mappa",
            "domestic_abuse", "research", "service_planning"]
CATEGORIES = ["health", "child_case_file", "adult_case_file", "education", "housing", "criminal_record",
              "contact_details", "special_category"]
CONDITIONS = [
    "context.risk_of_harm or context.consent == given",
    "requester.vetted and resource.classification <= requester.clearance",
    'requester.team == "MASH"',
    "has resource.subject_age and resource.subject_age >= 14 and resource.subject_age <= 25",
    "context.emergency and (context.risk_of_harm or context.approved_by is role_1)",
    "resource.owner == requester.agency",
    "requester.agency in group_0 and action in {view, share}",
    "not has resource.recorded_on or resource.recorded_on > 2015-04-01",
]


def rule(rng: random.Random, n: int) -> str:
    effect = "deny" if rng.random() < 0.15 else "permit"
    lines = [f'{effect} rule_{n} "Generated rule {n}" {{']
    lines.append("  action      " + ", ".join(rng.sample(["view", "share", "export", "amend"], rng.randint(1, 2))))
    lines.append("  role        " + ", ".join(f"role_{r}" for r in rng.sample(range(ROLES), rng.randint(1, 4))))
    if rng.random() < 0.5:
        lines.append(f"  agency      group_{rng.randrange(GROUPS)}, agency_{rng.randrange(AGENCIES)}")
    lines.append("  purpose     " + ", ".join(rng.sample(PURPOSES, rng.randint(1, 2))))
    lines.append("  data        " + ", ".join(rng.sample(CATEGORIES, rng.randint(1, 3))) + " up to official_sensitive")
    if effect == "permit" and rng.random() < 0.7:
        lines.append(f"  under       dsa_{rng.randrange(AGREEMENTS)}")
    lines.append("  when        " + rng.choice(CONDITIONS))
    if rng.random() < 0.5:
        lines.append("  obligation  audit_access")
    if rng.random() < 0.3:
        lines.append('  obligation  redact "nhs_number" unless requester.role is role_2')
    lines.append(f'  because     "Statute {n} s.{rng.randint(1, 99)}; agreement clause {rng.randint(1, 9)}"')
    return "\n".join(lines) + "\n}\n"


def write_set(root: Path, rules: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    (root / "00_vocabulary.policy").write_text(vocabulary(rng), encoding="utf-8")
    (root / "10_agreements.policy").write_text(agreements(rng), encoding="utf-8")
    for start in range(0, rules, RULES_PER_FILE):
        body = "\n".join(rule(rng, n) for n in range(start, min(rules, start + RULES_PER_FILE)))
        (root / f"20_rules_{start // RULES_PER_FILE:04d}.policy").write_text(body, encoding="utf-8")


def write_adversarial(root: Path, rules: int) -> None:
    """The example policies plus one file of N rules that differ only in a threshold.

    Every pair of these rules overlaps, so pairwise rule analysis meets its worst case.
    """
    for source in sorted((REPO / "policies").glob("*.policy")):
        (root / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    body = "\n".join(
        f'permit r{i} "Threshold {i}" {{\n  action view\n  role social_worker\n  purpose safeguarding\n'
        f"  data education up to official\n  when context.records_requested > {i}\n"
        f'  because "Generated {i}"\n}}\n'
        for i in range(rules)
    )
    (root / "99_thresholds.policy").write_text(body, encoding="utf-8")


def write_role_chain(root: Path, roles: int) -> None:
    """A set whose N roles each inherit from the one before: the worst case of closing a hierarchy."""
    chain = "\n".join(f"  r{i}" + (f" : r{i - 1}" if i else "") for i in range(roles))
    (root / "chain.policy").write_text(
        'policy "Role chain" {\n  version "1"\n}\nactions { view }\npurposes { care }\n'
        "categories { health }\nclassifications official\nagencies { a }\n"
        f"roles {{\n{chain}\n}}\n"
        'permit p "Top" {\n  action view\n  role r0\n  because "generated"\n}\n', encoding="utf-8")


STAGES = ("parse", "check", "analysis", "compile")


def measure(root: Path, analysis: bool) -> dict[str, float]:
    """Seconds of wall-clock and of CPU time for each stage of loading, as engine.load does them.

    Inside engine.pipeline.loading(), as engine.load is: the cyclic garbage collector
    paused while the set's objects are made. Cold: no file's parse, and no rule's
    check, analysis or compile result, is kept from a run before.
    """
    from engine import parse_cache, reuse
    from engine.pipeline import loading

    parse_cache.clear()
    reuse.clear()
    with loading():
        return _measure(root, analysis)


def _measure(root: Path, analysis: bool) -> dict[str, float]:
    from engine.compiler import compile_policy

    own = [(name, run) for name, run in checker.PASSES if name != "analysis"]
    clocks = [(time.perf_counter(), time.process_time())]
    policy_set, syntax = loader.load_set(root)
    clocks.append((time.perf_counter(), time.process_time()))
    ctx = checker.Context.of(policy_set)
    found = [d for _name, run in own for d in run(ctx)]
    clocks.append((time.perf_counter(), time.process_time()))
    errors = [d for d in syntax + found if d.is_error]
    if errors:
        raise SystemExit("generated set has errors:\n" + errors[0].render())
    if analysis:
        checker._analysis(ctx)
    clocks.append((time.perf_counter(), time.process_time()))
    compile_policy(policy_set, ctx.vocab)
    clocks.append((time.perf_counter(), time.process_time()))
    result = {}
    for stage, (before, after) in zip(STAGES, itertools.pairwise(clocks)):
        result[stage] = after[0] - before[0]
        result[stage + " cpu"] = after[1] - before[1]
    if not analysis:
        result["analysis"] = result["analysis cpu"] = float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 2000, 5000, 10000, 20000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is shown")
    parser.add_argument("--analysis-max", type=int, default=10**9,
                        help="run rule analysis only for sets up to this many rules")
    parser.add_argument("--adversarial", action="store_true",
                        help="the example policies plus N rules that differ only in a threshold")
    parser.add_argument("--reload", action="store_true",
                        help="also time engine.load again after one rule file changed "
                             "(parses kept by file, results kept by rule)")
    parser.add_argument("--role-chain", action="store_true",
                        help="one rule and N roles, each inheriting from the one before")
    args = parser.parse_args()
    started = time.perf_counter()
    loader.parse_sources([])  # build the parser once, outside the timings
    from engine.syntax import _parser

    _parser()
    built = (time.perf_counter() - started) * 1000
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; nproc {os.cpu_count()}; "
          f"Python {platform.python_version()}; parser built in {built:.0f} ms (once per process, not below)")
    print("times in ms, median of runs; wall-clock (CPU time of this process); "
          "load = parse + check + analysis + compile")
    print(f"{'rules':>7} {'files':>6} {'KiB':>6} " + " ".join(f"{s:>15}" for s in STAGES) + f" {'load':>15}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write = write_adversarial if args.adversarial else write_role_chain if args.role_chain else write_set
            write(root, size)
            files = list(root.glob("*.policy"))
            kib = sum(f.stat().st_size for f in files) / 1024
            runs = [measure(root, size <= args.analysis_max) for _ in range(args.repeat)]
            reloads = [reload_one_file(root) for _ in range(args.repeat)] if args.reload else []
        m = {k: statistics.median(r[k] for r in runs) * 1000 for k in runs[0]}
        load = sum(m[k] for k in STAGES if m[k] == m[k])
        load_cpu = sum(m[k + " cpu"] for k in STAGES if m[k] == m[k])
        cells = ["-".rjust(15) if m[k] != m[k] else _cell(m[k], m[k + " cpu"], 15) for k in STAGES]
        cells.append(_cell(load, load_cpu, 15))
        print(f"{size:>7} {len(files):>6} {kib:>6.0f} " + " ".join(cells), flush=True)
        if reloads:
            cold = [r[0] for r in reloads]
            warm = [r[1] for r in reloads]
            print(f"{'':>21} engine.load cold {_cell(*_median(cold), 0)}; after one file changed, "
                  f"results kept {_cell(*_median(warm), 0)} (runs: {', '.join(f'{w * 1000:.0f}' for w, _c in warm)})",
                  flush=True)


def reload_one_file(root: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """engine.load cold, then again after one rule file changed: (wall, CPU) seconds each."""
    import engine
    from engine import parse_cache, reuse

    parse_cache.clear()
    reuse.clear()
    clock = (time.perf_counter(), time.process_time())
    engine.load(root)
    cold = (time.perf_counter() - clock[0], time.process_time() - clock[1])
    changed = max(root.glob("*.policy"))
    changed.write_text(changed.read_text(encoding="utf-8") + f"\n# changed {time.time()}\n", encoding="utf-8")
    clock = (time.perf_counter(), time.process_time())
    engine.load(root)
    warm = (time.perf_counter() - clock[0], time.process_time() - clock[1])
    return cold, warm


def _median(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return (statistics.median(p[0] for p in pairs) * 1000, statistics.median(p[1] for p in pairs) * 1000)


def _cell(wall: float, cpu: float, width: int) -> str:
    return f"{wall:.0f} ({cpu:.0f})".rjust(width)


if __name__ == "__main__":
    main()
