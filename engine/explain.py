"""Explain decisions in words: the summary sentence, failed clauses, caseworker text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine import ast
from engine._expressions import show
from engine.symbols import NameLookupError
from engine.wording import and_list, or_list, plural

if TYPE_CHECKING:
    from engine.compiler import CompiledClause
    from engine.decision import Decision, NearMiss, Obligation, Reason
    from engine.symbols import Vocabulary


# --- the summary sentence -----------------------------------------------------------


def summary(outcome: str, reasons: tuple[Reason, ...], near_misses: tuple[NearMiss, ...],
            words: tuple[str, ...], obligations: tuple[Obligation, ...] = (),
            vocab: Vocabulary | None = None) -> str:
    """One plain-English sentence a caseworker could read, in the request's own words.

    `words` are the requester's role and agency, the action, the resource's
    category and owner and the purpose, as the request gave them (request.WORDS).
    Undetermined obligations are named at the end, with what they need. Given the
    vocabulary, names the policy declared a label for are said in the label's words.
    """
    role, agency, action, category, owner, purpose = words
    category_label = label_of(vocab, "category", category) if vocab is not None else None
    data = _lower_first(category_label) if category_label else f"{category} data"
    if vocab is not None:
        words = (named(vocab, "role", role), named(vocab, "agency", agency), action,
                 data, named(vocab, "agency", owner), named(vocab, "purpose", purpose))
    else:
        words = (role, agency, action, data, owner, purpose)
    return (_sentence(outcome, reasons, near_misses, words, vocab) + undetermined_clause(obligations, vocab)
            + ".")


def label_of(vocab: Vocabulary, kind: str, name: Any) -> str | None:
    """The label the policy declared for a role, agency, purpose, category or action, if any."""
    if not isinstance(name, str):
        return None
    tree = vocab.hierarchy(kind)
    if tree is not None:
        try:
            return tree.labels.get(tree.resolve(name))
        except NameLookupError:
            return None
    if kind == "agency":
        return vocab.agencies.get(name)
    if kind == "action":
        return vocab.actions.get(name)
    return None


def named(vocab: Vocabulary, kind: str, name: Any) -> str:
    """A name in the author's words: its declared label (a role's with a small first letter), else itself."""
    label = label_of(vocab, kind, name)
    if label is None:
        return str(name)
    return _lower_first(label) if kind == "role" else label


def attribute_words(vocab: Vocabulary | None, path: str) -> str:
    """An attribute as the policy labelled it, else its path."""
    attribute = vocab.attributes.get(path) if vocab is not None else None
    label = getattr(attribute, "label", None)
    return label if label else path


def _lower_first(text: str) -> str:
    """`Social worker` -> `social worker`; `Caldicott Guardian` and `MASH lead` keep their capitals."""
    if any(ch.isupper() for ch in text[1:]):
        return text
    return text[:1].lower() + text[1:]


def undetermined_clause(obligations: Iterable[Obligation], vocab: Vocabulary | None = None) -> str:
    """`; obligation inform_adult is undetermined because context.consent was not given (treat it as applying)`."""
    pending = [o for o in obligations if o.status == "undetermined"]
    if not pending:
        return ""
    needs = list(dict.fromkeys(attribute_words(vocab, path) for o in pending for path in o.needs))
    names = and_list(dict.fromkeys(o.name for o in pending))
    one = len(dict.fromkeys(o.name for o in pending)) == 1
    return (f"; {'obligation' if one else 'obligations'} {names} {'is' if one else 'are'} undetermined "
            f"because {and_list(needs)} {'was' if len(needs) == 1 else 'were'} not given "
            f"(treat {'it' if one else 'them'} as applying)")


def _sentence(outcome: str, reasons: tuple[Reason, ...], near_misses: tuple[NearMiss, ...],
              words: tuple[str, ...], vocab: Vocabulary | None = None) -> str:
    role, agency, action, category, owner, purpose = words
    who = f"{role} at {agency}"
    what = f"{category} owned by {owner} for {purpose}"  # the category as "health data", or its label
    if not reasons:
        sentence = f"Denied: no rule permits {who} to {action} {what}"
        if near_misses:
            nearest = near_misses[0]
            sentence += f"; the nearest rule, {nearest.rule}, fails on {and_list(_kinds(nearest))}"
        return sentence
    if outcome == "permit":
        sentence = f"Permitted: {who} may {action} {what} under "
    else:
        sentence = f"Denied: {who} may not {action} {what} under "
    sentence += rule_phrase(reasons[0]) if len(reasons) == 1 else "rules " + and_list(r.rule for r in reasons)
    missing = list(dict.fromkeys(attribute_words(vocab, path) for r in reasons for path in r.missing))
    if missing:
        sentence += f", which counts as applying because {and_list(missing)} " \
                    f"{plural(len(missing), 'was', 'were')} not given"
    return sentence


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
    if kind == "under" and isinstance(clause.clause, ast.MatchClause):
        had = _under_failure(clause.clause, env, vocab)
        return needed, had, f"under: needs {needed}, but {had}"
    node = clause.clause
    if isinstance(node, ast.DataClause):
        had = env["resource.category"]
        had_words = named(vocab, "category", had)
        needed_words = or_list(named(vocab, "category", c.text) for c in node.categories)
        if node.up_to is not None:
            marking = show(vocab, "resource.classification", env["resource.classification"])
            had += " marked " + marking
            had_words += " marked " + marking
            needed_words = f"{needed_words or 'any data'} up to {node.up_to.text}"
    else:
        had = env[clause.reads[0]]  # an action, role, agency or purpose: its (full) name
        of = _KIND_OF_CLAUSE.get(kind, kind)
        had_words = named(vocab, of, had)
        values = node.values if isinstance(node, ast.MatchClause) else ()
        needed_words = or_list(named(vocab, of, v.text) for v in values) or needed
    return needed, had, f"{kind}: needs {needed_words}, request has {had_words}"


# The vocabulary a clause's values come from, where the clause word is not its name.
_KIND_OF_CLAUSE = {"owner": "agency"}


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
    shown, said = [], []  # by path (the `had` field, for programs), and in the policy's words (the text)
    for path in clause.reads:
        words = attribute_words(vocab, path)
        value = show(vocab, path, env[path]) if path in env else None
        shown.append(f"{path} = {value}" if value is not None else f"no {path}")
        said.append(f"{words} = {value}" if value is not None else f"no {words}")
    had = ", ".join(shown)
    wanted = f"{needed} to be false" if clause.kind == "unless" else needed
    text = f"{clause.kind}: needs {wanted}" + (f", request has {', '.join(said)}" if said else "")
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
            line = f"  - {obligation.name}" + (f" ({args})" if args else "")
            if obligation.status == "undetermined":
                line += (f" -- undetermined: {and_list(obligation.needs)} "
                         f"{'was' if len(obligation.needs) == 1 else 'were'} not given; treat it as applying")
            lines.append(line)
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
