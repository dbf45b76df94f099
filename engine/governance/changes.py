"""What a change to a policy set changes, declaration by declaration, and why each one matters or not.

The diff (diff.py) finds every request decided differently; this lists what
the authors changed: rules, agreements, vocabulary, attributes, policy-wide
obligations and the combining algorithm, added, removed or changed (layout
and comments are not changes: syntax trees compare without positions). Each
comes with its effect: the diff's rows it takes part in, or, when it has
none, why (the rule analysis's finding about it, or that other rules already
decide the same).
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import ast, clock
from engine.symbols import Vocabulary
from engine.wording import count

_RULE_FINDINGS = ("rule_never_applies", "agreement_expired", "rule_shadowed", "permit_never_effective",
                  "deny_never_effective", "subsumed_rule", "duplicate_rule")
_KINDS = (("actions", "action"), ("roles", "role"), ("purposes", "purpose"), ("categories", "category"),
          ("classifications", "classification"), ("agencies", "agency"))
_SHOWN_LINES = 14
_NO_DIFFERENCE = "no request is decided differently"


@dataclass
class Change:
    """One declaration added, removed or changed, and what that does to decisions."""

    kind: str  # rule, agreement, vocabulary, attribute, obligation, combining
    name: str
    change: str  # added, removed, changed
    text: list[str] = field(default_factory=list)  # a short text diff: lines starting "- " or "+ "
    rows: list[int] = field(default_factory=list)  # numbers of the diff's rows it takes part in
    effect: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "change": self.change, "text": self.text,
                "rows": self.rows, "effect": self.effect}

    @property
    def title(self) -> str:
        return f"{self.kind} `{self.name}` {self.change}" if self.name else f"{self.kind} {self.change}"


def rule_changes(old: Any, new: Any, diff: Any) -> list[Change]:
    """Every declaration that differs between two versions (matrix.Version), with its effect
    on `diff`'s rows (diff.Diff)."""
    found: list[Change] = []
    found += _rules(old, new, diff)
    found += _agreements(old.vocab, new.vocab, diff)
    found += _vocabulary(old.vocab, new.vocab, diff)
    found += _attributes(old.vocab, new.vocab, diff)
    found += _policy_obligations(old.vocab, new.vocab, diff)
    if old.vocab.combine != new.vocab.combine:
        rows = list(range(1, len(diff.rows) + 1))
        found.append(Change("combining", "", "changed",
                            [f"- combine {old.vocab.combine.value}", f"+ combine {new.vocab.combine.value}"], rows,
                            _effect(rows) if rows else _NO_DIFFERENCE))
    return found


def render_changes(changes: list[Change], fmt: str) -> str:
    """The changes as a list for the text and markdown reports (empty when there are none)."""
    if not changes:
        return ""
    head = f"What changed ({count(len(changes), 'declaration')}):"
    lines = [f"## {head[:-1]}" if fmt == "md" else head, ""] if fmt == "md" else [head]
    for change in changes:
        lines.append(f"- {change.title}: {change.effect}")
        if change.text:
            fence = ["  ```diff"] if fmt == "md" else []
            lines += fence + [f"    {line}" for line in change.text] + (["  ```"] if fmt == "md" else [])
    return "\n".join(lines) + "\n"


# --- rules --------------------------------------------------------------------------------


def _paired(before: Mapping[str, Any], after: Mapping[str, Any],
            same: Callable[[Any, Any], bool]) -> Iterator[tuple[str, str, Any, Any]]:
    """Each name declared in either version whose declaration differs, as (name, added |
    removed | changed, before or None, after or None): the new version's order, then the
    names it dropped."""
    for name in dict.fromkeys([*after, *before]):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and same(old, new):
            continue
        yield name, "added" if old is None else "removed" if new is None else "changed", old, new


def _rules(old: Any, new: Any, diff: Any) -> list[Change]:
    before = {r.id.text: r for r in old.vocab.rules}
    after = {r.id.text: r for r in new.vocab.rules}
    return [_rule_change(rule_id, change, was, now, old if change == "removed" else new, diff)
            for rule_id, change, was, now in _paired(before, after, operator.eq)]


def _rule_change(rule_id: str, change: str, before: ast.Rule | None, after: ast.Rule | None, version: Any,
                 diff: Any) -> Change:
    rows = _rows(diff, lambda _box, c: rule_id in c.old.rules or rule_id in c.new.rules)
    if rows:
        effect = _effect(rows)
    else:
        rule = after if after is not None else before
        assert rule is not None
        reason = _finding(version, rule)
        if reason is None:
            reason = ("the other rules decide every request it applied to the same way" if change == "removed"
                      else "every request it applies to is decided the same way by the other rules")
        effect = f"{_NO_DIFFERENCE}: {reason}"
    return Change("rule", rule_id, change, _text(before, after), rows, effect)


def _finding(version: Any, rule: ast.Rule) -> str | None:
    """What the rule analysis says of the rule in its version (never applies, shadowed, ...)."""
    span = rule.id.span
    for warning in getattr(version, "warnings", ()):
        if warning.code in _RULE_FINDINGS and warning.span is not None and span is not None \
                and warning.span.path == span.path and warning.span.line == span.line:
            return str(warning.message)
    return None


def _text(before: Any, after: Any) -> list[str]:
    """A short diff of two declarations' source text (either may be None)."""
    old, new = _source(before), _source(after)
    lines = [line for line in difflib.unified_diff(old, new, lineterm="", n=0)
             if not line.startswith(("---", "+++", "@@"))]
    shown = [f"{line[0]} {line[1:].strip()}" for line in lines if line[1:].strip()]
    if len(shown) > _SHOWN_LINES:
        shown = shown[:_SHOWN_LINES] + [f"  … {len(shown) - _SHOWN_LINES} more lines"]
    return shown


def _source(node: Any) -> list[str]:
    span = getattr(node, "span", None)
    if span is None:
        return []
    lines = span.source.text.splitlines()
    return [line.rstrip() for line in lines[span.line - 1:span.end_line]]


# --- agreements, vocabulary, attributes, obligations ------------------------------------


def _agreements(old: Vocabulary, new: Vocabulary, diff: Any) -> list[Change]:
    found = []
    for name, change, before, after in _paired(old.agreements, new.agreements, lambda a, b: _terms(a) == _terms(b)):
        users = {r.id.text for vocab in (old, new) for r in vocab.rules if _under(r, name)}
        rows = _rows(diff, lambda _box, c, users=users: bool(users & {*c.old.rules, *c.new.rules}))
        if rows:
            effect = _effect(rows)
        elif not users:
            effect = f"{_NO_DIFFERENCE}: no rule relies on it"
        else:
            agreement = after or before
            assert agreement is not None
            expired = agreement.end is not None and agreement.end < clock.today()
            effect = f"{_NO_DIFFERENCE}: " + (
                f"it ended on {agreement.end.isoformat()}" if expired and agreement.end is not None
                else "the rules that rely on it decide the same")
        found.append(Change("agreement", name, change, _text(before, after), rows, effect))
    return found


def _terms(agreement: Any) -> tuple[Any, ...]:
    return (agreement.title, agreement.parties, agreement.sources, agreement.recipients, agreement.start,
            agreement.end, agreement.reference)


def _under(rule: ast.Rule, agreement: str) -> bool:
    return any(isinstance(c, ast.MatchClause) and c.kind is ast.ClauseKind.UNDER
               and any(v.text == agreement for v in c.values) for c in rule.clauses)


def _vocabulary(old: Vocabulary, new: Vocabulary, diff: Any) -> list[Change]:
    found = []
    for plural, kind in _KINDS:
        before, after = old.values_of(kind), new.values_of(kind)
        added = [v for v in after if v not in before]
        removed = [v for v in before if v not in after]
        for change, values in (("added", added), ("removed", removed)):
            if not values:
                continue
            named = set(values)
            rows = _rows(diff, lambda box, _c, named=named: any(named & s for s in box[:7]))
            effect = _effect(rows) if rows else _NO_DIFFERENCE
            sign = "+" if change == "added" else "-"
            found.append(Change("vocabulary", plural, change, [f"{sign} {', '.join(values)}"], rows, effect))
    for name, change, was, now in _paired(old.groups, new.groups, operator.eq):
        text = [f"- {', '.join(sorted(was))}"] if was is not None else []
        text += [f"+ {', '.join(sorted(now))}"] if now is not None else []
        found.append(Change("group", name, change, text, [], "its rules' changes are listed with them"))
    return found


def _attributes(old: Vocabulary, new: Vocabulary, diff: Any) -> list[Change]:
    found = []
    for path, change, before, after in _paired(old.attributes, new.attributes, lambda a, b: _schema(a) == _schema(b)):
        if (before is not None and before.builtin) or (after is not None and after.builtin):
            continue
        rows = _rows(diff, lambda box, _c, path=path: any(path in words for words in diff.when(box)))
        effect = _effect(rows) if rows else _NO_DIFFERENCE
        text = [f"- {_schema_text(before)}"] if before is not None else []
        text += [f"+ {_schema_text(after)}"] if after is not None else []
        found.append(Change("attribute", path, change, text, rows, effect))
    return found


def _schema(attribute: Any) -> tuple[Any, ...]:
    return (attribute.kind, attribute.values, attribute.default, attribute.element)


def _schema_text(attribute: Any) -> str:
    kind = attribute.kind if attribute.kind != "set" else f"set of {attribute.element}"
    if attribute.kind == "one_of":
        kind = "one of { " + ", ".join(attribute.values) + " }"
    default = attribute.default
    shown = ""
    if default is not None:
        shown = " default " + (default.text if isinstance(default, ast.Name) else str(getattr(default, "value", "{…}")))
    return f"{attribute.path} {kind}{shown}"


def _policy_obligations(old: Vocabulary, new: Vocabulary, diff: Any) -> list[Change]:
    found = []
    before, after = list(old.policy_obligations), list(new.policy_obligations)
    for change, these, others in (("added", after, before), ("removed", before, after)):
        for decl in these:
            if decl in others:
                continue
            name = decl.obligation.name
            rows = _rows(diff, lambda _box, c, name=name: any(o[0] == name
                                                              for o in (*c.old.obligations, *c.new.obligations)))
            effect = _effect(rows) if rows else "no request's obligations change"
            sign = "+" if change == "added" else "-"
            found.append(Change("obligation", name, change,
                                [f"{sign} {line.strip()}" for line in _source(decl)], rows, effect))
    return found


# --- effects ------------------------------------------------------------------------------


def _rows(diff: Any, test: Any) -> list[int]:
    return [number for number, (box, change) in enumerate(diff.rows, 1) if test(box, change)]


def _effect(rows: list[int]) -> str:
    numbers = ", ".join(str(n) for n in rows[:10]) + (", …" if len(rows) > 10 else "")
    return f"decided differently in {count(len(rows), 'row')} ({numbers})"


