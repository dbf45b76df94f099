"""How long `engine test` takes on a 1,000-case test file.

    python bench/policy_tests.py [--policy DIR] [--cases N] [--seed S] [--failing]

Generates N requests over the vocabulary of a policy set (default: the example
policies), decides each once to write the expectation it should have (with
`by` and `obligations`, so every check runs; `--failing` expects the
opposite, so every case prints its explanation), writes them as one *.test.yaml
beside a copy of the set, then times

  1. run_test_files() in-process: YAML loading, validation, deciding, coverage;
  2. the whole command, `python -m engine test DIR`, in a fresh interpreter.

The target is under 2 s for 1,000 cases. This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from engine.testing import report as _testreport  # noqa: E402
from engine.testing.cases import deep_merge  # noqa: E402
from engine.loader import default_policy_dir  # noqa: E402
from engine.testing.runner import run_test_files  # noqa: E402

KINDS = {
    ("requester", "role"): "role",
    ("requester", "agency"): "agency",
    ("action",): "action",
    ("purpose",): "purpose",
    ("resource", "category"): "category",
    ("resource", "classification"): "classification",
    ("resource", "owner"): "agency",
}


def generate_requests(policy, count: int, seed: int) -> list[dict]:
    """Random requests over the declared vocabulary, with the declared bool and one-of facts."""
    rng = random.Random(seed)
    vocabulary = policy.vocabulary
    values = {kind: vocabulary.values_of(kind) for kind in set(KINDS.values())}
    facts = [a for a in vocabulary.attributes.values() if not a.builtin and a.kind in ("bool", "one_of")]
    requests = []
    for _ in range(count):
        request: dict = {}
        for path, kind in KINDS.items():
            _put(request, path, rng.choice(values[kind]))
        for attribute in facts:
            if rng.random() < 0.3:
                value = rng.random() < 0.5 if attribute.kind == "bool" else rng.choice(attribute.values)
                _put(request, tuple(attribute.path.split(".")), value)
        requests.append(request)
    return requests


def _put(request: dict, path: tuple[str, ...], value: object) -> None:
    for part in path[:-1]:
        request = request.setdefault(part, {})
    request[path[-1]] = value


def write_cases(policy, requests: list[dict], path: Path, failing: bool = False) -> None:
    """The requests as cases expecting what the engine decides now, `by` and obligations included.

    With `failing`, every case expects the opposite, so every one prints its explanation.
    """
    defaults = {"context": {"date": "2025-06-01"}}
    cases = []
    for i, request in enumerate(requests):
        decision = policy.decide(deep_merge(defaults, request))
        expect = {"permit": "deny", "deny": "permit"}[decision.decision] if failing else decision.decision
        case = {"name": f"generated case {i + 1}", "request": request, "expect": expect}
        if decision.reasons:
            case["by"] = decision.reasons[0].rule
        case["obligations"] = sorted({o.name for o in decision.obligations})
        cases.append(case)
    document = {"defaults": defaults, "cases": cases}
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default=None, help="policy directory (default: the example policies)")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--failing", action="store_true", help="every case fails (the slowest output)")
    args = parser.parse_args()
    source = Path(args.policy) if args.policy else default_policy_dir()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "policies"
        work.mkdir()
        for file in sorted(source.rglob("*.policy")):
            shutil.copy(file, work / file.relative_to(source).as_posix().replace("/", "_"))
        policy = engine.load(work)
        test_file = work / "bench.test.yaml"
        write_cases(policy, generate_requests(policy, args.cases, args.seed), test_file, args.failing)
        print(f"{args.cases} cases over {len(policy.rules)} rules of {source}")

        started, cpu = time.perf_counter(), time.process_time()
        report = run_test_files(policy, [test_file])
        _testreport.render_text(report)
        in_process, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"run_test_files + render:   {in_process:.3f} s wall, {cpu:.3f} s CPU  "
              f"({_testreport.closing_line(report)}, rule coverage {report.coverage.percent:.1f}%)")

        # CPU time alongside wall time: on a busy machine wall time mostly measures the neighbours.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "engine", "test", str(work)], cwd=ROOT,
                              capture_output=True, text=True)
        whole = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()
        print(f"python -m engine test DIR: {whole:.3f} s wall, {cpu:.3f} s CPU  (exit {done.returncode}, {last})")
        verdict = "under" if whole < 2.0 else "OVER"
        print(f"{verdict} the 2 s target for {args.cases} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
