"""Explain decisions in words: the summary sentence, failed clauses, caseworker text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import ast
from engine._expressions import show
from engine.wording import and_list, plural

if TYPE_CHECKING:
    from engine.compiler import CompiledClause
    from engine.decision import Decision, NearMiss, Reason
    from engine.symbols import Vocabulary


# --- the summary sentence -----------------------------------------------------------


def summary(outcome: str, reasons: tuple[Reason, ...], near_misses: tuple[NearMiss, ...],
            words: tuple[str, ...]) -> str:
    """One plain-English sentence a caseworker could read, in the request's own words.

    `words` are the requester's role and agency, the action, the resource's
    category and owner and the purpose, as the request gave them (request.WORDS).
    """
    role, agency, action, category, owner, purpose = words
    who = f"{role} at {agency}"
    what = f"{category} data owned by {owner} for {purpose}"
    if not reasons:
        sentence = f"Denied: no rule permits {who} to {action} {what}"
        if near_misses:
            nearest = near_misses[0]
            sentence += f"; the nearest rule, {nearest.rule}, fails on {and_list(_kinds(nearest))}"
        return sentence + "."
    if outcome == "permit":
        sentence = f"Permitted: {who} may {action} {what} under "
    else:
        sentence = f"Denied: {who} may not {action} {what} under "
    sentence += rule_phrase(reasons[0]) if len(reasons) == 1 else "rules " + and_list(r.rule for r in reasons)
    missing = list(dict.fromkeys(path for r in reasons for path in r.missing))
    if missing:
        sentence += f", which counts as applying because {and_list(missing)} " \
                    f"{plural(len(missing), 'was', 'were')} not given"
    return sentence + "."


def not_held_summary(role: str, agency: str) -> str:
    """The summary of a `role_not_held` deny."""
    return f"Denied: role {role} is not held at agency {agency}."


def rule_phrase(reason: Reason) -> str:
    """`rule child_protection (Children Act 1989 s.47)`."""
    return f"rule {reason.rule}" + (f" ({reason.because})" if reason.because else "")


def _kinds(near: NearMiss) -> list[str]:
    return list(dict.fromkeys(f.clause for f in near.failed))


# --- failed clauses -------------------------------------------------------------------


def failure(clause: CompiledClause, env: dict[str, Any], vocab: Vocabulary) -> tuple[str, str, str]:
    """(needed, had, text) for a clause that did not hold."""
    kind, needed = clause.kind, clause.needed
    if kind in ("when", "unless"):
        return _condition_failure(clause, env, vocab)
    if kind == "under":
        assert isinstance(clause.clause, ast.MatchClause)  # the compiler makes `under` of match clauses
        had = _under_failure(clause.clause, env, vocab)
        return needed, had, f"under: needs {needed}, but {had}"
    if kind == "data":
        had = env["resource.category"]
        if isinstance(clause.clause, ast.DataClause) and clause.clause.up_to is not None:
            had += " marked " + show(vocab, "resource.classification", env["resource.classification"])
    else:
        had = env[clause.reads[0]]  # an action, role, agency or purpose: its (full) name
    return needed, had, f"{kind}: needs {needed}, request has {had}"


def _under_failure(node: ast.MatchClause, env: dict[str, Any], vocab: Vocabulary) -> str:
    """Why none of the agreements covers the request: not parties, or outside their dates."""
    agency, owner, date = env["requester.agency"], env["resource.owner"], env["context.date"]
    problems = []
    for value in node.values:
        agreement = vocab.agreements[value.text]
        why = []
        if agreement.parties is not None:
            outside = list(dict.fromkeys(a for a in (agency, owner) if a not in agreement.parties))
            if outside:
                why.append(f"{and_list(outside)} {plural(len(outside), 'is not a party', 'are not parties')}")
        else:
            if owner not in (agreement.sources or ()):
                why.append(f"{owner} may not disclose under it")
            if agency not in (agreement.recipients or ()):
                why.append(f"{agency} may not receive under it")
        if agreement.start is not None and agreement.end is not None and not agreement.start <= date <= agreement.end:
            why.append(f"{date.isoformat()} is outside its dates "
                       f"{agreement.start.isoformat()} to {agreement.end.isoformat()}")
        problems.append(f"{value.text}: {' and '.join(why) or 'does not cover this request'}")
    return "; ".join(problems)


def _condition_failure(clause: CompiledClause, env: dict[str, Any], vocab: Vocabulary) -> tuple[str, str, str]:
    needed = clause.needed
    shown = []
    for path in clause.reads:
        shown.append(f"{path} = {show(vocab, path, env[path])}" if path in env else f"no {path}")
    had = ", ".join(shown)
    wanted = f"{needed} to be false" if clause.kind == "unless" else needed
    text = f"{clause.kind}: needs {wanted}" + (f", request has {had}" if had else "")
    return needed, had, text


# --- text for caseworkers -------------------------------------------------------------


def explain_text(decision: Decision) -> str:
    """The decision as text a caseworker can read: outcome, rules, obligations, near misses."""
    lines = [decision.decision.upper(), "", decision.summary, ""]
    if decision.reasons:
        lines.append("Decided by:")
        for reason in decision.reasons:
            described = f" - {reason.description}" if reason.description else ""
            lines.append(f"  {reason.effect} {reason.rule}{described}")
            if reason.because:
                lines.append(f"    because: {reason.because}")
            if reason.missing:
                lines.append(f"    applies because this was not given: {', '.join(reason.missing)}")
            lines.append(f"    at {reason.file}:{reason.line}")
    elif decision.denied_by == "role_not_held":
        lines += ["Refused before any rule was looked at: the policy says at which agencies each role is held,",
                  "and this role is not held at this agency. If the role or agency in the request is wrong,",
                  "correct it and ask again; if the arrangement has changed, ask your information governance",
                  "team to update the policy."]
    else:
        lines.append("No rule applied.")
    if decision.obligations:
        lines += ["", "You must:"]
        for obligation in decision.obligations:
            args = ", ".join(_arg(a) for a in obligation.args)
            lines.append(f"  - {obligation.name}" + (f" ({args})" if args else ""))
    if decision.near_misses:
        lines += ["", "Nearest rules that did not apply:"]
        for near in decision.near_misses:
            lines.append(f"  {near.rule}" + (f" - {near.description}" if near.description else "")
                         + f" ({near.file}:{near.line})")
            lines.extend(f"    x {failed.text}" for failed in near.failed)
    title = f"{decision.title} {decision.label or ''}".strip() if decision.title else "policy"
    lines += ["", f"{title}, {decision.policy_version}; decision {decision.decision_id}"]
    return "\n".join(lines)


def _arg(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "(not given)"
    return str(value)
