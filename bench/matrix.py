"""Benchmark the access matrix and the diff: combinations decided per second, wall time.

    python bench/matrix.py              # example set (defaults and a busy context), generated 100 and 1,000 rules
    python bench/matrix.py --quick      # the example set only
    python bench/matrix.py --sizes 100 1000 5000

Every combination of the vocabulary counts as decided: most are decided in
bulk (values the rules cannot tell apart share one engine decision; branches
no permit rule can reach are refused), the rest one engine call each. The
"engine alone" column is the rate of deciding requests one by one with
`Policy.decide(use_cache=False)`: what a brute-force matrix would manage.
Each matrix is spot-checked: sampled combinations decided by the engine
directly must agree with its rows.

Targets: at least 100,000 combinations a second; `engine matrix` and
`engine diff` on the example set in under 10 seconds, start to finish.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine.governance.terms import DIMENSIONS  # noqa: E402
from engine.governance.diff import build_diff, load_pair  # noqa: E402
import engine  # noqa: E402
from engine.governance.matrix import build_matrix, load_version, parse_context, version_of  # noqa: E402
from engine.governance.table import Legend  # noqa: E402

DATE = dt.date(2025, 6, 1)
BUSY = ["emergency=true", "risk_of_harm=true", "consent=given", "team=MASH", "approved_by=caldicott_guardian",
        "mappa_level=2", "subject_age=15", "court_order=true", "vetted=true"]


def matrix_row(name: str, path: str, context: list[str], explore: bool = False) -> None:
    """One matrix: with every context value and date tried (`explore`), or in the one context
    of `context` with everything else at its default (then spot-checked against the engine)."""
    if explore:
        version = load_version(path, None, context)
    else:
        policy = engine.load(path)
        given, restrict = parse_context(policy.vocabulary, context)
        version = version_of(policy, DATE, given, restrict, at_defaults=True)
    matrix = build_matrix(version)
    checked = "property-tested" if explore else spot_check(version, matrix, 2000)
    alone = engine_rate(version, 2000) if not explore else 0
    print(f"{name:<28} {matrix.cells:>13,} {matrix.representatives:>9,} {len(matrix.rows):>6} "
          f"{matrix.seconds:>8.2f} {matrix.cells / matrix.seconds:>15,.0f} {alone:>13,.0f}  {checked}")


def spot_check(version, matrix, count: int) -> str:
    """Sampled combinations (half of them in permitted rows) decided by the engine directly."""
    legend = Legend(version.vocab)
    rows = [([frozenset(v) for v in legend.expand(box)], box[6] == frozenset(("=requester.agency",)), outcome)
            for box, outcome in matrix.rows]
    index: dict[tuple[str, str], list[int]] = {}
    for number, (sets, _own, _outcome) in enumerate(rows):
        for key in itertools.product(sets[0], sets[1]):
            index.setdefault(key, []).append(number)
    rng = random.Random(3)
    values = [version.values(p) for p in DIMENSIONS]
    cells = [tuple(rng.choice(v) for v in values) for _ in range(count // 2)]
    for sets, own, _outcome in rng.sample(rows, min(len(rows), count // 2)):
        cell = [rng.choice(sorted(s)) for s in sets]
        cells.append(tuple(cell[:6]) + ((cell[2],) if own else (cell[6],)))
    wrong = 0
    for cell in cells:
        named = dict(zip(DIMENSIONS, cell))
        outcome = version.judge(named, {})[0]
        expected = outcome if outcome.decision == "permit" else None
        found = None
        for number in index.get((cell[0], cell[1]), ()):
            sets, own, row_outcome = rows[number]
            if all(v in s for v, s in zip(cell, sets)) and (not own or cell[2] == cell[6]):
                found = row_outcome
                break
        wrong += found != expected
    return f"{len(cells)} checked, {wrong} wrong"


def engine_rate(version, count: int) -> float:
    rng = random.Random(5)
    values = [version.values(p) for p in DIMENSIONS]
    requests = [version.request(dict(zip(DIMENSIONS, (rng.choice(v) for v in values))), {}) for _ in range(count)]
    started = time.perf_counter()
    for request in requests:
        version.decide(request)
    return count / (time.perf_counter() - started)


def diff_rows(path: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        amended = Path(scratch) / "amended"
        shutil.copytree(path, amended)
        _amend(amended)
        for name, other in (("example vs itself", path), ("example vs amended", str(amended))):
            started = time.perf_counter()
            old, new = load_pair(path, other, None, [])  # every context value and every date
            diff = build_diff(old, new)
            total = time.perf_counter() - started
            print(f"{name:<28} {diff.cells:>13,} {diff.representatives:>9,} {len(diff.rows):>6} "
                  f"{diff.seconds:>8.2f} {diff.cells / diff.seconds:>15,.0f} {'':>13}  load+diff {total:.2f} s")


def _amend(root: Path) -> None:
    """Narrow one rule, widen another, drop an obligation: a typical amendment."""
    for file in root.glob("*.policy"):
        text = file.read_text()
        text = text.replace("  data        housing, contact_details up to official\n",
                            "  data        housing, contact_details up to official_sensitive\n")
        text = text.replace("  role        social_worker, police_officer, school_dsl, named_nurse, gp\n",
                            "  role        social_worker, police_officer, named_nurse, gp\n")
        text = text.replace("  unless      context.consent == refused\n  obligation  audit_access\n",
                            "  unless      context.consent == refused\n")
        file.write_text(text)


def cli_wall(args: list[str]) -> str:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True)
    return f"{time.perf_counter() - started:.2f} s (exit {done.returncode}, {len(done.stdout.splitlines())} lines)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000], help="generated set sizes (rules)")
    parser.add_argument("--quick", action="store_true", help="the example set only")
    args = parser.parse_args()
    print(f"{'set':<28} {'combinations':>13} {'decided':>9} {'rows':>6} {'seconds':>8} "
          f"{'combinations/s':>15} {'engine alone':>13}  spot check")
    examples = str(ROOT / "policies")
    matrix_row("example, defaults", examples, [])
    matrix_row("example, busy context", examples, BUSY)
    matrix_row("example, every context", examples, [], explore=True)
    if not args.quick:
        from generate import realistic_model

        for size in args.sizes:
            with tempfile.TemporaryDirectory() as scratch:
                realistic_model(size).write(Path(scratch))
                matrix_row(f"generated, {size:,} rules", scratch, [])
                matrix_row(f"generated, {size:,}, every context", scratch, [], explore=True)
    diff_rows(examples)
    print()
    print("engine matrix policies:              ", cli_wall(["matrix", "policies"]))
    print("engine matrix policies (busy, html): ", cli_wall(["matrix", "policies", "--date", DATE.isoformat(),
                                                           "--format", "html", *_flags(BUSY)]))
    print("engine diff --git HEAD policies:     ", cli_wall(["diff", "--git", "HEAD", "policies"]))
    with tempfile.TemporaryDirectory() as scratch:  # the example less its consent-only rule
        amended = Path(scratch) / "amended"
        shutil.copytree(ROOT / "policies", amended)
        children = amended / "20_children.policy"
        text = children.read_text()
        start = text.index("permit early_help_with_consent")
        children.write_text(text[:start] + text[text.index("}\n", start) + 2:])
        print("engine diff (consent-only rule gone):", cli_wall(["diff", "policies", str(amended)]))


def _flags(context: list[str]) -> list[str]:
    return list(itertools.chain.from_iterable(("--context", c) for c in context))


if __name__ == "__main__":
    main()
