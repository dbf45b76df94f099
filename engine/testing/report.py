"""Word a policy test report: text for people, JSON for tools, JUnit XML for CI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from engine.errors import PolicyLoadError
from engine.testing.runner import CaseResult, TestReport
from engine.wording import plural

_GREEN, _RED, _YELLOW, _BOLD = "32", "31", "33", "1"


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def closing_line(report: TestReport) -> str:
    """The last line of every text run: `N passed, M failed`."""
    return f"{report.passed} passed, {report.failed} failed"


# --- text -----------------------------------------------------------------------


def render_text(report: TestReport, *, verbose: bool = False, colour: bool = False,
                coverage_min: float | None = None) -> str:
    """Failures (and with `verbose` passes too), coverage, then the closing line."""
    lines: list[str] = []
    for file in report.files:
        if file.problem is not None:
            problem = file.problem
            lines.append(f"{_paint('ERROR', _RED + ';' + _BOLD, colour)} {problem}")
            lines.extend(problem.excerpt())
            if problem.help:
                lines.append(f"  help: {problem.help}")
            lines.append("  this test file could not be loaded; its cases did not run")
        for result in file.results:
            if result.passed and verbose:
                lines.append(f"{_paint('PASS', _GREEN, colour)} {_where(result)} {result.case.name}")
            elif not result.passed:
                lines.append(f"{_paint('FAIL', _RED + ';' + _BOLD, colour)} {_where(result)} {result.case.name}")
                lines.extend("  " + line for line in failure_lines(result))
    if not report.files:
        lines.append("no test files (*.test.yaml) found: nothing was tested")
    elif report.keyword and not report.results:
        lines.append(f"no case name contains `{report.keyword}`: nothing was tested")
    elif not report.results and not report.file_problems:
        lines.append("the test files hold no cases: nothing was tested")
    if lines:
        lines.append("")
    if report.results:  # with nothing tested, a list of every rule as uncovered says nothing
        lines.extend(_coverage_lines(report, colour, coverage_min))
    problems = len(report.file_problems)
    if problems:
        noun = plural(problems, "test file")
        lines.append(_paint(f"{problems} {noun} could not be loaded", _RED, colour))
    lines.append(closing_line(report))
    return "\n".join(lines)


def _where(result: CaseResult) -> str:
    return f"{result.case.path}:{result.case.line}"


def failure_lines(result: CaseResult) -> list[str]:
    """What a failed case expected, what it got, and why the engine decided so."""
    lines = []
    if result.decision is not None:
        lines += [f"expected: {_expected(result)}", f"actual:   {_actual(result)}"]
        missing_by = [rule for rule in result.case.by if rule not in result.reason_rules]
        if missing_by:
            lines.append(f"not among the reasons: {', '.join(missing_by)}")
        for key in ("obligations", "undetermined"):
            if key in result.mismatches:
                lines.append(_obligation_difference(result, key))
    for error in result.errors:
        field = f"{error.field}: " if error.field else ""
        label = "note" if error.kind == "unknown_obligation" else "error"
        lines.append(f"{label}: {error.path}:{error.line}: {field}{error.message}")
        if error.help:
            lines.append(f"  help: {error.help}")
    if result.decision is not None:
        lines += _explanation(result.decision)
    return lines


def _expected(result: CaseResult) -> str:
    case = result.case
    text = case.expect or "?"
    if case.by:
        text += f" by {', '.join(case.by)}"
    if case.obligations is not None:
        text += f"; obligations: {', '.join(case.obligations) or 'none'}"
    if case.undetermined is not None:
        text += f"; undetermined: {', '.join(case.undetermined) or 'none'}"
    return text


def _actual(result: CaseResult) -> str:
    rules = result.reason_rules
    outcome: str = result.decision.decision
    text = outcome + (f" by {', '.join(rules)}" if rules else " (no rule applied)")
    text += f"; obligations: {', '.join(result.obligation_names) or 'none'}"
    if result.undetermined_names or result.case.undetermined is not None:
        text += f"; undetermined: {', '.join(result.undetermined_names) or 'none'}"
    return text


def _obligation_difference(result: CaseResult, key: str = "obligations") -> str:
    expected = getattr(result.case, key) or ()
    names = result.obligation_names if key == "obligations" else result.undetermined_names
    wanted, got = set(expected), set(names)
    parts = []
    if wanted - got:
        parts.append("missing " + ", ".join(n for n in expected if n not in got))
    if got - wanted:
        parts.append("not expected " + ", ".join(n for n in names if n not in wanted))
    return f"{key}: " + "; ".join(parts)


def _explanation(decision: Any) -> list[str]:
    lines = []
    if decision.reasons:
        lines.append("reasons:")
        for reason in decision.reasons:
            described = f' "{reason.description}"' if reason.description else ""
            lines.append(f"  {reason.effect} {reason.rule}{described} ({reason.file}:{reason.line})")
            if reason.because:
                lines.append(f"    because {reason.because}")
    if decision.near_misses:
        lines.append("near misses:")
        for miss in decision.near_misses:
            lines.append(f"  {miss.rule} ({miss.file}:{miss.line})")
            lines.extend(f"    {clause.text}" for clause in miss.failed)
    if decision.summary:
        lines.append(f"summary: {decision.summary}")
    return lines


def _coverage_lines(report: TestReport, colour: bool, coverage_min: float | None) -> list[str]:
    coverage = report.coverage
    lines = [f"rule coverage: {len(coverage.covered)}/{coverage.total} rules ({coverage.percent:.1f}%)"]
    if report.keyword:
        lines.append(f"  (counting only the cases whose name contains `{report.keyword}`)")
    if coverage.uncovered:
        lines.append("rules no passing case made decide:")
        width = max(len(ref.rule) for ref in coverage.uncovered)
        for ref in coverage.uncovered:
            lines.append(_paint(f"  {ref.rule.ljust(width)}  {ref.path}:{ref.line}", _YELLOW, colour))
    if report.coverage_short(coverage_min):
        message = f"rule coverage {coverage.percent:.1f}% is below the minimum of {coverage_min:g}%"
        lines.append(_paint(message, _RED, colour))
    return lines


# --- JSON -----------------------------------------------------------------------


def report_dict(report: TestReport, coverage_min: float | None = None) -> dict[str, Any]:
    """The report as JSON-ready data: cases, files, coverage and totals."""
    coverage = report.coverage
    return {
        "policy_version": report.policy_version,
        "keyword": report.keyword,
        "files": [
            {"file": f.path, "cases": len(f.results), "error": _problem_dict(f.problem)} for f in report.files
        ],
        "cases": [_case_dict(result) for result in report.results],
        "coverage": {
            "covered": len(coverage.covered),
            "total": coverage.total,
            "percent": round(coverage.percent, 1),
            "minimum": coverage_min,
            "ok": not report.coverage_short(coverage_min),
            "uncovered": [
                {"rule": r.rule, "effect": r.effect, "file": r.path, "line": r.line} for r in coverage.uncovered
            ],
        },
        "totals": {
            "passed": report.passed,
            "failed": report.failed,
            "files": len(report.files),
            "files_not_loaded": len(report.file_problems),
        },
        "exit_code": report.exit_code(coverage_min),
    }


def render_json(report: TestReport, coverage_min: float | None = None) -> str:
    return json.dumps(report_dict(report, coverage_min), indent=2)


def load_error_json(err: PolicyLoadError) -> str:
    """A policy set that did not load, in the same document shape tools read."""
    diagnostics = [d.to_json() for d in err.diagnostics]
    return json.dumps({"error": {"code": err.code, "message": err.message, "diagnostics": diagnostics},
                       "exit_code": 2}, indent=2)


def _case_dict(result: CaseResult) -> dict[str, Any]:
    case = result.case
    actual = None
    if result.decision is not None:
        actual = {"decision": result.decision.decision, "reasons": list(result.reason_rules),
                  "obligations": list(result.obligation_names), "undetermined": list(result.undetermined_names)}
    errors = [error.to_dict() for error in result.errors]
    return {
        "name": case.name,
        "file": case.path,
        "line": case.line,
        "status": result.status,
        "expected": {"decision": case.expect, "by": list(case.by),
                     "obligations": None if case.obligations is None else list(case.obligations),
                     "undetermined": None if case.undetermined is None else list(case.undetermined)},
        "actual": actual,
        "mismatches": list(result.mismatches),
        "error": errors[0] if errors else None,
        "errors": errors,
        "explanation": None if result.passed or result.decision is None else result.decision.to_dict(),
        "seconds": round(result.seconds, 6),
    }


def _problem_dict(problem: Any) -> dict[str, Any] | None:
    if problem is None:
        return None
    data = {"file": problem.path, "line": problem.line, "column": problem.column, "message": problem.message}
    if problem.help:
        data["help"] = problem.help
    return data


# --- JUnit XML --------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(report: TestReport) -> ET.ElementTree:
    """One testsuite per test file, one testcase per case; failures carry the explanation.

    A test file that could not be loaded becomes a testcase with an `error`,
    so CI shows why, while the counts of cases stay those of the text report.
    """
    root = ET.Element("testsuites", name="policy tests", tests=str(len(report.results)),
                      failures=str(report.failed), errors=str(len(report.file_problems)),
                      time=f"{report.seconds:.3f}")
    for file in report.files:
        failed = sum(1 for r in file.results if not r.passed)
        suite = ET.SubElement(root, "testsuite", name=_xml(file.path), tests=str(len(file.results)),
                              failures=str(failed), errors=str(int(file.problem is not None)),
                              time=f"{sum(r.seconds for r in file.results):.3f}")
        if file.problem is not None:
            case = ET.SubElement(suite, "testcase", name="(test file could not be loaded)",
                                 classname=_xml(file.path), file=_xml(file.path), line=str(file.problem.line))
            error = ET.SubElement(case, "error", message=_xml(file.problem.message), type="test_file_error")
            error.text = _xml(str(file.problem) + (f"\nhelp: {file.problem.help}" if file.problem.help else ""))
        for result in file.results:
            _junit_case(suite, result)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: TestReport, path: str) -> None:
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)


def _junit_case(suite: ET.Element, result: CaseResult) -> None:
    case = result.case
    element = ET.SubElement(suite, "testcase", name=_xml(case.name), classname=_xml(case.path),
                            file=_xml(case.path), line=str(case.line), time=f"{result.seconds:.6f}")
    if result.passed:
        return
    kind = result.errors[0].kind if result.errors and result.decision is None else "mismatch"
    failure = ET.SubElement(element, "failure", message=_xml(_failure_message(result)), type=kind)
    failure.text = _xml("\n".join([f"{case.path}:{case.line} {case.name}", *failure_lines(result)]))


def _failure_message(result: CaseResult) -> str:
    if result.decision is None:
        error = result.errors[0]
        return f"{error.field}: {error.message}" if error.field else error.message
    return f"expected {_expected(result)}; got {_actual(result)}"
