"""Benchmark loading a policy set: read + parse, then check (and rule analysis).

Generates realistic sets of 100, 1,000 and 10,000 rules: a full vocabulary,
agreements, and rules with several clauses each (action, role, agency, purpose,
data up to, under, when, obligations, because), a hundred rules to a file.

    python bench/load.py                   # 100, 1,000 and 10,000 rules
    python bench/load.py --sizes 1000 --repeat 5

Target: 1,000 rules parse and check in under a second.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import checker, loader  # noqa: E402

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


def measure(root: Path, analysis: bool) -> dict[str, float]:
    """Seconds of wall-clock and of CPU time for each stage."""
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
    result = {}
    for stage, (before, after) in zip(("parse", "check", "analysis"), zip(clocks, clocks[1:])):
        result[stage] = after[0] - before[0]
        result[stage + " cpu"] = after[1] - before[1]
    if not analysis:
        result["analysis"] = result["analysis cpu"] = float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is shown")
    parser.add_argument("--analysis-max", type=int, default=1000,
                        help="run rule analysis only for sets up to this many rules")
    args = parser.parse_args()
    loader.parse_sources([])  # build the parser once, outside the timings
    from engine.syntax import _parser

    _parser()
    print("times in ms, median of runs; wall-clock (CPU time of this process)")
    print(f"{'rules':>7} {'files':>6} {'KiB':>6} {'parse':>13} {'check':>11} {'load':>13} {'analysis':>15}  1k target")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_set(root, size)
            files = list(root.glob("*.policy"))
            kib = sum(f.stat().st_size for f in files) / 1024
            # analysis is slow on large sets: measured on the first run only
            runs = [measure(root, size <= args.analysis_max and i == 0) for i in range(args.repeat)]
        m = {k: statistics.median(r[k] for r in runs) * 1000 for k in runs[0] if k.startswith(("parse", "check"))}
        m["analysis"], m["analysis cpu"] = runs[0]["analysis"] * 1000, runs[0]["analysis cpu"] * 1000
        load, load_cpu = m["parse"] + m["check"], m["parse cpu"] + m["check cpu"]
        target = ("ok" if load < 1000 else f"over (CPU {'ok' if load_cpu < 1000 else 'over'})") if size == 1000 else ""
        cells = [_cell(m[k], m[k + " cpu"], w) for k, w in (("parse", 13), ("check", 11))]
        cells.append(_cell(load, load_cpu, 13))
        cells.append("-".rjust(15) if m["analysis"] != m["analysis"] else _cell(m["analysis"], m["analysis cpu"], 15))
        print(f"{size:>7} {len(files):>6} {kib:>6.0f} " + " ".join(cells) + f"  {target}")


def _cell(wall: float, cpu: float, width: int) -> str:
    return f"{wall:.0f} ({cpu:.0f})".rjust(width)


if __name__ == "__main__":
    main()
