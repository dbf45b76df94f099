"""Policy tests: run *.test.yaml cases against a policy set, behind `engine test`.

`run_test_files()` is the library entry: it decides every case and returns a
`TestReport` (data). `run_tests()` is the command: it finds the policy set and
its test files, runs them, and prints the report as text, JSON or JUnit XML
(engine/testing/report.py words it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.ast import ObligationClause
from engine.errors import RequestError, did_you_mean
from engine.testing.cases import Case, Problem, TestFile, read_test_file

TEST_FILE_GLOB = "*.test.yaml"


@dataclass(frozen=True, slots=True)
class CaseError:
    """Why a case could not be decided: a mistake in the case, or an invalid request."""

    kind: str  # "invalid_case" | "invalid_request" | "engine_error" | "unknown_obligation" (a hint)
    message: str
    path: str
    line: int
    field: str | None = None
    help: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, "message": self.message, "file": self.path, "line": self.line}
        if self.field:
            data["field"] = self.field
        if self.help:
            data["help"] = self.help
        return data


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's outcome: the decision it got (when decided) and what differed."""

    case: Case
    passed: bool
    decision: Any = None  # engine.decision.Decision, or None when not decided
    mismatches: tuple[str, ...] = ()  # "decision", "by", "obligations", "undetermined"
    errors: tuple[CaseError, ...] = ()
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def reason_rules(self) -> tuple[str, ...]:
        return tuple(r.rule for r in self.decision.reasons) if self.decision is not None else ()

    @property
    def obligation_names(self) -> tuple[str, ...]:
        """The names of the obligations that apply."""
        if self.decision is None:
            return ()
        return tuple(dict.fromkeys(o.name for o in self.decision.obligations if o.status == "applies"))

    @property
    def undetermined_names(self) -> tuple[str, ...]:
        """The names of the obligations left undetermined by an omitted attribute."""
        if self.decision is None:
            return ()
        return tuple(dict.fromkeys(o.name for o in self.decision.obligations if o.status != "applies"))


@dataclass(frozen=True, slots=True)
class FileReport:
    """One test file: its case results, or the problem that kept it from loading."""

    path: str
    results: tuple[CaseResult, ...] = ()
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class RuleRef:
    rule: str
    effect: str
    path: str
    line: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which rules some passing case made decide (was among its reasons)."""

    covered: tuple[RuleRef, ...]
    uncovered: tuple[RuleRef, ...]

    @property
    def total(self) -> int:
        return len(self.covered) + len(self.uncovered)

    @property
    def percent(self) -> float:
        return 100.0 * len(self.covered) / self.total if self.total else 100.0


@dataclass(frozen=True, slots=True)
class TestReport:
    """Everything a run found, in test-file order; rendering is separate."""

    __test__ = False  # not a pytest test class

    policy_version: str
    files: tuple[FileReport, ...]
    coverage: Coverage
    keyword: str | None = None
    seconds: float = 0.0

    @property
    def results(self) -> list[CaseResult]:
        return [result for file in self.files for result in file.results]

    @property
    def passed(self) -> int:
        return sum(1 for result in self.results if result.passed)

    @property
    def failed(self) -> int:
        return sum(1 for result in self.results if not result.passed)

    @property
    def file_problems(self) -> list[Problem]:
        return [file.problem for file in self.files if file.problem is not None]

    def coverage_short(self, minimum: float | None) -> bool:
        # Compare at the precision we print, so "90.0%" never fails a 90 minimum.
        return minimum is not None and round(self.coverage.percent, 1) < minimum

    def exit_code(self, coverage_min: float | None = None) -> int:
        """0 all passed, 1 a case failed or coverage short, 2 a test file did not load or no case ran.

        A run that tested nothing is not a pass: a CI job must not go green on a
        misspelt `-k` or an empty folder.
        """
        if self.file_problems or not self.results:
            return 2
        if self.failed or self.coverage_short(coverage_min):
            return 1
        return 0


# --- running ------------------------------------------------------------------


def run_test_files(policy: Any, paths: Iterable[str | Path], keyword: str | None = None) -> TestReport:
    """Run the cases of each test file against a loaded `engine.Policy`.

    `keyword` keeps only cases whose name contains it, ignoring case.
    """
    return _run(policy, [(Path(path), str(path)) for path in paths], keyword)


def _run(policy: Any, paths: list[tuple[Path, str]], keyword: str | None) -> TestReport:
    started = time.perf_counter()
    rule_ids = {rule.id.text for rule in policy.rules}
    obligation_names = _obligation_names(policy)
    files = []
    for path, shown in paths:
        test_file = read_test_file(path, shown, rule_ids)
        cases = _select(test_file, keyword)
        results = tuple(_run_case(policy, case, obligation_names) for case in cases)
        files.append(FileReport(test_file.path, results, test_file.problem))
    coverage = _coverage(policy, [r for f in files for r in f.results])
    return TestReport(policy.version, tuple(files), coverage, keyword, time.perf_counter() - started)


def _select(test_file: TestFile, keyword: str | None) -> tuple[Case, ...]:
    if not keyword:
        return test_file.cases
    wanted = keyword.casefold()
    return tuple(case for case in test_file.cases if case.named and wanted in case.name.casefold())


def _run_case(policy: Any, case: Case, obligation_names: frozenset[str]) -> CaseResult:
    if case.problems:
        errors = tuple(CaseError("invalid_case", p.message, p.path, p.line, help=p.help) for p in case.problems)
        return CaseResult(case, False, errors=errors)
    started = time.perf_counter()
    try:
        decision = policy.decide(case.request, use_cache=False)
    except RequestError as exc:
        error = CaseError("invalid_request", exc.message, case.path, case.line_of(exc.field), exc.field, exc.help)
        return CaseResult(case, False, errors=(error,), seconds=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a case must never stop the run; show what the engine said
        error = CaseError("engine_error", f"{type(exc).__name__}: {exc}", case.path, case.line)
        return CaseResult(case, False, errors=(error,), seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    mismatches = _mismatches(case, decision)
    errors = _unknown_obligations(case, obligation_names) \
        if {"obligations", "undetermined"} & set(mismatches) else ()
    return CaseResult(case, not mismatches, decision, mismatches, errors, seconds)


def _mismatches(case: Case, decision: Any) -> tuple[str, ...]:
    found = []
    if decision.decision != case.expect:
        found.append("decision")
    reasons = {reason.rule for reason in decision.reasons}
    if getattr(decision, "denied_by", None):
        reasons.add(decision.denied_by)  # `by: role_not_held`
    if any(rule not in reasons for rule in case.by):
        found.append("by")
    for key, status in (("obligations", "applies"), ("undetermined", "undetermined")):
        expected = getattr(case, key)
        if expected is not None and set(expected) != {o.name for o in decision.obligations if o.status == status}:
            found.append(key)
    return tuple(found)


def _unknown_obligations(case: Case, known: frozenset[str]) -> tuple[CaseError, ...]:
    """A hint when an expected obligation is named nowhere in the policy set."""
    if not known:
        return ()
    return tuple(
        CaseError("unknown_obligation", f"no rule or policy-wide obligation is called `{name}`",
                  case.path, case.case_lines.get(key, case.line), help=did_you_mean(name, known))
        for key in ("obligations", "undetermined")
        for name in getattr(case, key) or () if name not in known
    )


def _obligation_names(policy: Any) -> frozenset[str]:
    names = {c.name for rule in policy.rules for c in rule.clauses if isinstance(c, ObligationClause)}
    vocabulary = getattr(policy, "vocabulary", None)
    names.update(o.obligation.name for o in getattr(vocabulary, "policy_obligations", ()))
    return frozenset(names)


def _coverage(policy: Any, results: list[CaseResult]) -> Coverage:
    decided = {rule for result in results if result.passed for rule in result.reason_rules}
    refs = [RuleRef(r.id.text, r.effect.value, r.span.path, r.span.line) for r in policy.rules]
    return Coverage(tuple(r for r in refs if r.rule in decided), tuple(r for r in refs if r.rule not in decided))


# --- the command ------------------------------------------------------------------
