"""Expression typing for the checker: every `when`/`unless` and obligation
condition is type-checked against the attribute schema before a policy loads.

Operands are attributes (typed by the schema), literals (typed by their
form), nested conditions (true or false), or bare names, which take the type
of the attribute they are compared with (docs/language.md, "Conditions").
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from engine import ast
from engine.durations import duration_text
from engine.errors import Diagnostic, did_you_mean, error, warning
from engine.source import Span
from engine.symbols import ATTRIBUTE_ROOTS, VOCABULARY_KINDS, Attribute, NameLookupError, Vocabulary

ORDERED_KINDS = ("number", "date", "classification")
HIERARCHY_KINDS = ("role", "purpose", "category")

_PLURAL = {
    "bool": "true/false values",
    "string": "strings",
    "one_of": "one-of choices",
    "action": "actions",
    "role": "roles",
    "agency": "agencies",
    "purpose": "purposes",
    "category": "categories",
}


@dataclass(frozen=True, slots=True)
class Type:
    """What an operand is: a schema kind, a bare `name`, or `error` (already reported)."""

    kind: str
    values: tuple[str, ...] = ()  # the choices of a one_of
    element: str | None = None  # a set: the kind of its members

    def describe(self) -> str:
        if self.kind == "set":
            member = self.element or ""
            return "a set of " + ("one-of choices" if member == "one_of" else _PLURAL.get(member, member + "s"))
        if self.kind == "one_of":
            return "one of " + ", ".join(self.values)
        if self.kind == "bool":
            return "true or false"
        return {"agency": "an agency", "action": "an action"}.get(self.kind, f"a {self.kind}")


BOOL = Type("bool")
NAME = Type("name")
ERROR = Type("error")


@dataclass(frozen=True, slots=True)
class Typed:
    """An operand with its type and how to show it (`context.consent`, `2025-06-01`)."""

    type: Type
    shown: str
    attribute: Attribute | None = None


def attribute_type(attribute: Attribute) -> Type:
    return Type(attribute.kind, attribute.values, attribute.element)


def member_type(set_type: Type) -> Type:
    """The type of a set's members."""
    return Type(set_type.element or "error", set_type.values)


class ExprChecker:
    """Type-checks expressions against one vocabulary, collecting diagnostics."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.found: list[Diagnostic] = []

    # --- entry points -----------------------------------------------------

    def condition(self, expr: ast.Expr, keyword: str) -> None:
        """A `when`/`unless` expression: it must be true or false."""
        typed = self._expr(expr)
        if typed.type.kind not in ("bool", "error"):
            self._not_boolean(expr, typed, keyword)

    def obligation_argument(self, value: ast.Value) -> None:
        """Literals or declared attribute paths only; not sets."""
        if not isinstance(value, ast.Name):
            return
        attribute = self.vocab.attributes.get(value.text)
        if attribute is not None and attribute.kind == "set":
            self._error("bad_obligation_argument", f"`{value.text}` is a set and cannot be an obligation argument",
                        value.span, "pass a single value, or write the obligation once per case with `when`")
            return
        if attribute is not None:
            return
        if _looks_like_attribute(value.text):
            self._unknown_attribute(value)
            return
        self._error(
            "bad_obligation_argument",
            f"obligation argument `{value.text}` is not an attribute",
            value.span,
            self._attribute_hint(value.text) or f'write text in double quotes: `"{value.text}"`',
        )

    # --- expressions --------------------------------------------------------

    def _expr(self, expr: ast.Expr) -> Typed:
        handler: Callable[[object], Typed] = getattr(self, f"_expr_{type(expr).__name__}")
        return handler(expr)

    def _expr_BoolOp(self, expr: ast.BoolOp) -> Typed:
        for operand in expr.operands:
            self.condition(operand, f"`{expr.op}`")
        return Typed(BOOL, "a condition")

    def _expr_Not(self, expr: ast.Not) -> Typed:
        self.condition(expr.operand, "`not`")
        return Typed(BOOL, "a condition")

    def _expr_Compare(self, expr: ast.Compare) -> Typed:
        left, right = self._operand(expr.left), self._operand(expr.right)
        if ERROR in (left.type, right.type):
            return Typed(BOOL, "a condition")
        for side in (left, right):
            if side.type.kind == "set":
                self._error("cannot_compare_set", f"`{side.shown}` is {side.type.describe()} and cannot be compared",
                            expr.span, f"test a member with `x in {side.shown}`, or whether it was given with "
                                       f"`has {side.shown}`")
                return Typed(BOOL, "a condition")
            if side.type.kind == "duration":
                self._duration_alone(side, expr.span)
                return Typed(BOOL, "a condition")
        if NAME in (left.type, right.type):
            # A bare name is a value of the attribute on the other side.
            name, other = (expr.left, right) if left.type == NAME else (expr.right, left)
            if other.attribute is None:
                self._unknown_attribute(name)
            elif expr.op in ("==", "!=") or self._orderable(expr, other.type, other.type):
                self._value(other, name)
            return Typed(BOOL, "a condition")
        if expr.op in ("<", "<=", ">", ">=") and not self._orderable(expr, left.type, right.type):
            return Typed(BOOL, "a condition")
        if not _compatible(left.type, right.type):
            self._error(
                "type_mismatch",
                f"cannot compare `{left.shown}` ({left.type.describe()}) with `{right.shown}` ({right.type.describe()})",
                expr.span,
                _values_help(left) or _values_help(right) or "both sides must be the same kind of value",
            )
        return Typed(BOOL, "a condition")

    def _orderable(self, expr: ast.Compare, left: Type, right: Type) -> bool:
        if left.kind in ORDERED_KINDS and right.kind in ORDERED_KINDS:
            return True  # a mismatch between two ordered kinds is reported by the caller
        bad = left.kind if left.kind not in ORDERED_KINDS else right.kind
        help = "`<`, `<=`, `>` and `>=` compare numbers, dates and classifications only"
        if bad in HIERARCHY_KINDS:
            help += f"; write `is` to test a {bad} and those below it"
        self._error("cannot_order", f"`{expr.op}` cannot order {_PLURAL.get(bad, bad + 's')}", expr.span, help)
        return False

    def _expr_InSet(self, expr: ast.InSet) -> Typed:
        operand = self._operand(expr.operand)
        if operand.type.kind == "set":
            self._set_on_left(operand, expr.operand.span)
            operand = Typed(ERROR, operand.shown)
        if operand.type == NAME:
            self._unknown_attribute(expr.operand)
        elif operand.attribute is None and operand.type != ERROR:
            self._error("type_mismatch", f"`in` needs an attribute on its left, not `{operand.shown}`",
                        expr.operand.span, "for example `action in {view, share}`")
            operand = Typed(ERROR, operand.shown)
        seen: set[object] = set()
        for value in expr.values:
            key = _literal_key(value)
            if key in seen:
                self._warning("repeated_value", f"`{_shown(value)}` is listed twice", value.span, "remove one")
            seen.add(key)
            if operand.type in (NAME, ERROR):
                continue
            if isinstance(value, ast.Name) and value.text not in self.vocab.attributes:
                self._value(operand, value)
            else:
                other = self._operand(value)
                if other.type != ERROR and not _compatible(operand.type, other.type):
                    self._error(
                        "type_mismatch",
                        f"`{other.shown}` ({other.type.describe()}) cannot be a value of `{operand.shown}` "
                        f"({operand.type.describe()})",
                        value.span,
                        _values_help(operand),
                    )
        return Typed(BOOL, "a condition")

    def _expr_InGroup(self, expr: ast.InGroup) -> Typed:
        operand = self._operand(expr.operand)
        if operand.type == NAME:
            self._unknown_attribute(expr.operand)
            return Typed(BOOL, "a condition")
        name = expr.group.text
        if name not in self.vocab.groups:
            self._not_a_group(operand, expr.group)
        elif operand.type.kind not in ("agency", "error"):
            self._error(
                "type_mismatch",
                f"`in {name}` needs an agency, but `{operand.shown}` is {operand.type.describe()}",
                expr.operand.span,
                "groups hold agencies: test `requester.agency` or `resource.owner`",
            )
        return Typed(BOOL, "a condition")

    def _not_a_group(self, operand: Typed, group: ast.Name) -> None:
        name = group.text
        if name in self.vocab.agencies:
            self._error("unknown_name", f"`{name}` is an agency, not a group", group.span,
                        f"write `{operand.shown} == {name}`")
        elif operand.type.kind not in ("agency", "error", "bool", "number", "string", "date"):
            self._error("unknown_name", f"unknown group `{name}`", group.span,
                        f"to test a list of values write `{operand.shown} in {{{name}}}`")
        else:
            self._error("unknown_name", f"unknown group `{name}`", group.span,
                        did_you_mean(name, self.vocab.groups) or "declare it with `group NAME = { … }`")

    def _expr_InAttribute(self, expr: ast.InAttribute) -> Typed:
        """`x in S`: S a `set of T` attribute, x a value of type T (exact, never through a tree)."""
        attribute = self.vocab.attributes.get(expr.set.text)
        if attribute is None:
            self._unknown_attribute(expr.set)
            return Typed(BOOL, "a condition")
        whole = Typed(attribute_type(attribute), expr.set.text, attribute)
        if attribute.kind != "set":
            self._error("not_a_set", f"`{expr.set.text}` is not a set: it is {whole.type.describe()}", expr.set.span,
                        f"`in` takes a `set of …` attribute, a group, or values in braces: "
                        f"`x in {{a, b}}`; to compare two values write `x == {expr.set.text}`")
            return Typed(BOOL, "a condition")
        member = Typed(member_type(whole.type), expr.set.text, attribute)
        operand = self._operand(expr.operand)
        if operand.type == NAME and isinstance(expr.operand, ast.Name):
            self._value(member, expr.operand)  # a bare name is a value of the members' type
        elif operand.type.kind == "set":
            self._set_on_left(operand, expr.operand.span)
        elif operand.type != ERROR and (operand.type.kind != member.type.kind or operand.type.values != member.type.values):
            self._error("type_mismatch",
                        f"`{operand.shown}` ({operand.type.describe()}) cannot be a member of `{expr.set.text}` "
                        f"({whole.type.describe()})", expr.span, "both sides must be the same kind of value")
        return Typed(BOOL, "a condition")

    def _set_on_left(self, operand: Typed, span: Span) -> None:
        self._error("cannot_compare_set", f"`{operand.shown}` is {operand.type.describe()} and cannot stand left of "
                    "`in` or `is`", span, f"test one value instead: `x in {operand.shown}`")

    def _duration_alone(self, typed: Typed, span: Span) -> None:
        self._error("bad_arithmetic", f"`{typed.shown}` is a duration: it can only be added to or taken from a date",
                    span, f"for example `resource.discharged_on + {typed.shown}`")

    def _arithmetic(self, expr: ast.Arithmetic) -> Typed:
        """`date + duration`, `date - duration`: a date; anything else is a load error."""
        left, right = self._operand(expr.left), self._operand(expr.right)
        shown = f"{left.shown} {expr.op} {right.shown}"
        for side, value in ((left, expr.left), (right, expr.right)):
            if side.type == NAME and side.shown in _UNITS:
                self._error("unit_without_number", f"`{side.shown}` needs a number before it", value.span,
                            f"write a whole number and the unit, like `28 {side.shown}`")
                return Typed(ERROR, shown)
            if side.type == NAME and isinstance(value, ast.Name):
                self._unknown_attribute(value)
                return Typed(ERROR, shown)
        if ERROR in (left.type, right.type):
            return Typed(ERROR, shown)
        if left.type.kind == "duration" and right.type.kind == "date":
            self._error("bad_arithmetic", f"`{expr.op}` needs the date first, then the duration", expr.span,
                        f"write `{right.shown} {expr.op} {left.shown}`")
        elif left.type.kind != "date" or right.type.kind != "duration":
            help = "dates move by durations, like `context.date - 6 years`; no other arithmetic exists"
            if right.type.kind == "number" and left.type.kind == "date":
                help = f"say what the number counts: `{left.shown} {expr.op} {right.shown} days`"
            self._error("bad_arithmetic", f"`{expr.op}` needs a date and a duration, not `{left.shown}` "
                        f"({left.type.describe()}) and `{right.shown}` ({right.type.describe()})", expr.span, help)
        else:
            return Typed(Type("date"), shown)
        return Typed(ERROR, shown)

    def _expr_Is(self, expr: ast.Is) -> Typed:
        operand = self._operand(expr.operand)
        if operand.type == NAME:
            self._unknown_attribute(expr.operand)
            return Typed(BOOL, "a condition")
        if operand.type.kind == "set":
            self._set_on_left(operand, expr.operand.span)
            return Typed(BOOL, "a condition")
        if expr.node.text in self.vocab.attributes:
            self._error("type_mismatch", f"the right of `is` must be a value, not the attribute `{expr.node.text}`",
                        expr.node.span, f"compare two attributes with `==`: `{operand.shown} == {expr.node.text}`")
            return Typed(BOOL, "a condition")
        kind = operand.type.kind
        if kind == "agency" and expr.node.text in self.vocab.groups:
            self._error("type_mismatch", f"`{expr.node.text}` is a group, not an agency", expr.node.span,
                        f"write `{operand.shown} in {expr.node.text}`")
        elif kind in ("bool", "number", "string", "date"):
            self._error("type_mismatch", f"`is` cannot test `{operand.shown}`, which is {operand.type.describe()}",
                        expr.span, "compare it with `==`")
        elif kind != "error":
            self._value(operand, expr.node)
        return Typed(BOOL, "a condition")

    def _expr_Has(self, expr: ast.Has) -> Typed:
        attribute = self.vocab.attributes.get(expr.path.text)
        if attribute is None:
            self._unknown_attribute(expr.path)
        elif attribute.required:
            self._warning("always_true", f"`has {expr.path.text}` is always true", expr.span,
                          f"every request must give `{expr.path.text}`")
        return Typed(BOOL, "a condition")

    def _expr_Name(self, expr: ast.Name) -> Typed:
        typed = self._operand(expr)
        if typed.type == NAME:
            self._unknown_attribute(expr)
            return Typed(ERROR, expr.text)
        return typed

    def _literal(self, expr: ast.Literal) -> Typed:
        return self._operand(expr)

    _expr_StringLit = _expr_NumberLit = _expr_BoolLit = _expr_DateLit = _expr_DurationLit = _literal
    _expr_Arithmetic = _literal

    # --- operands and values ------------------------------------------------

    def _operand(self, value: ast.Expr) -> Typed:
        match value:
            case ast.Name(text=text):
                attribute = self.vocab.attributes.get(text)
                if attribute is not None:
                    return Typed(attribute_type(attribute), text, attribute)
                if _looks_like_attribute(text):
                    self._unknown_attribute(value)
                    return Typed(ERROR, text)
                return Typed(NAME, text)
            case ast.StringLit() | ast.NumberLit() | ast.BoolLit() | ast.DateLit():
                return Typed(Type(_LITERAL_KINDS[type(value)]), _shown(value))
            case ast.DurationLit():
                return Typed(Type("duration"), _shown(value))
            case ast.Arithmetic():
                return self._arithmetic(value)
            case _:
                # `(a or b) == true`: the bracketed condition is already true
                # or false; comparing it is never needed and not compiled.
                self._expr(value)
                self._error("compare_condition", "a condition in brackets cannot be compared", value.span,
                            "use the condition as it is, or `not (…)` for the opposite")
                return Typed(ERROR, "(…)")

    def _value(self, target: Typed, name: ast.Expr) -> None:
        """A bare name standing for a value of `target`'s type."""
        kind, text = target.type.kind, _shown(name)  # a Name: its text
        if kind == "one_of":
            if text not in target.type.values:
                help = did_you_mean(text, target.type.values) or _values_help(target)
                self._error("unknown_value", f"unknown value `{text}` for `{target.shown}`", name.span, help)
        elif kind in VOCABULARY_KINDS:
            try:
                self.vocab.resolve(kind, text)
            except NameLookupError as exc:
                code = "ambiguous_name" if exc.candidates else "unknown_name"
                help = exc.help or declared_as(self.vocab, text, kind)
                if kind == "agency" and text in self.vocab.groups:
                    help = f"`{text}` is a group; to test its agencies write `{target.shown} in {text}`"
                self._error(code, exc.message, name.span, help)
        elif kind in ("bool", "number", "string", "date"):
            self._error("type_mismatch", f"`{text}` is not a value of `{target.shown}`, which is {target.type.describe()}",
                        name.span, self._attribute_hint(text) or _LITERAL_HELP[kind].format(text=text))

    # --- reports --------------------------------------------------------------

    def _not_boolean(self, expr: ast.Expr, typed: Typed, keyword: str) -> None:
        if typed.type.kind == "set":
            self._error("not_boolean", f"`{typed.shown}` is not true or false: it is {typed.type.describe()}",
                        expr.span, f"test a member with `x in {typed.shown}`, or whether it was given with "
                                   f"`has {typed.shown}`")
            return
        if typed.attribute is not None:
            message = f"`{typed.shown}` is not true or false: it is {typed.type.describe()}"
            help = f"compare it with a value, e.g. `{typed.shown} {self._example(typed)}`"
        else:
            message = f"{keyword} needs a condition that is true or false, not {typed.type.describe()}"
            help = "write a comparison, or name an attribute that is true or false"
        self._error("not_boolean", message, expr.span, help)

    def _example(self, typed: Typed) -> str:
        kind = typed.type.kind
        if kind == "one_of" and typed.type.values:
            return f"== {typed.type.values[0]}"
        if kind in VOCABULARY_KINDS and self.vocab.values_of(kind):
            op = "is" if kind in HIERARCHY_KINDS else "=="
            return f"{op} {self.vocab.values_of(kind)[0]}"
        return {"number": ">= 18", "date": "< 2025-06-01", "string": '== "text"'}.get(kind, "== …")

    def _unknown_attribute(self, name: ast.Expr) -> None:
        text = _shown(name)  # a Name: its text
        help = self._attribute_hint(text)
        if help is None and not _looks_like_attribute(text):
            help = "attributes start with `requester.`, `resource.` or `context.`"
        elif help is None:
            help = "declare it in an `attributes { … }` block"
        self._error("unknown_attribute", f"unknown attribute `{text}`", name.span, help)

    def _attribute_hint(self, text: str) -> str | None:
        """Did-you-mean over attribute paths, also matching a path's last part."""
        ends = [path for path in self.vocab.attributes if path.rsplit(".", 1)[-1] == text]
        if len(ends) == 1:
            return f"did you mean `{ends[0]}`?"
        found = did_you_mean(text, self.vocab.attributes)
        if found:
            return found
        lasts = {path.rsplit(".", 1)[-1]: path for path in self.vocab.attributes}
        close = difflib.get_close_matches(text, list(lasts), n=1, cutoff=0.6)
        return f"did you mean `{lasts[close[0]]}`?" if close else None

    def _error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.found.append(error(code, message, span, help))

    def _warning(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.found.append(warning(code, message, span, help))


_LITERAL_KINDS = {ast.StringLit: "string", ast.NumberLit: "number", ast.BoolLit: "bool", ast.DateLit: "date"}

_LITERAL_HELP = {
    "bool": "write `true` or `false`",
    "number": "write a number, like `18`",
    "string": 'write text in double quotes: `"{text}"`',
    "date": "write a date, like `2025-06-01`",
}


def _looks_like_attribute(text: str) -> bool:
    return text.split(".", 1)[0] in ATTRIBUTE_ROOTS and "." in text


def _compatible(left: Type, right: Type) -> bool:
    return left.kind == right.kind or "error" in (left.kind, right.kind)


def _values_help(typed: Typed) -> str | None:
    if typed.type.kind == "one_of":
        listed = ", ".join(f"`{v}`" for v in typed.type.values)
        return f"`{typed.shown}` is one of {listed}"
    return None


def _shown(value: object) -> str:
    match value:
        case ast.StringLit(value=text):
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        case ast.BoolLit(value=flag):
            return "true" if flag else "false"
        case ast.DateLit(value=date):
            return date.isoformat()
        case ast.NumberLit(value=number):
            return str(number)
        case ast.DurationLit(amount=amount, unit=unit):
            return duration_text(amount, unit)
        case ast.Name(text=text):
            return text
    return "(…)"


_UNITS = frozenset(("day", "days", "week", "weeks", "month", "months", "year", "years"))


def _literal_key(value: object) -> object:
    return (type(value).__name__, getattr(value, "value", getattr(value, "text", None)))


_KIND_WORDS = {
    "action": "an action", "role": "a role", "purpose": "a purpose", "category": "a category",
    "classification": "a classification", "agency": "an agency", "group": "a group",
    "agreement": "an agreement", "attribute": "an attribute",
}


def declared_kinds(vocab: Vocabulary, text: str, unlike: str) -> list[str]:
    """The other kinds of name `text` is declared as (`gmp`: agency)."""
    kinds = []
    for kind in ("action", "role", "purpose", "category", "classification", "agency"):
        if kind == unlike:
            continue
        tree = vocab.hierarchy(kind)
        if (tree.candidates(text) if tree is not None else text in vocab.values_of(kind)):
            kinds.append(kind)
    if text in vocab.groups and unlike != "group":
        kinds.append("group")
    if text in vocab.agreements and unlike != "agreement":
        kinds.append("agreement")
    return kinds


def kind_word(kind: str) -> str:
    """`an agency`, `a role`."""
    return _KIND_WORDS[kind]


def declared_as(vocab: Vocabulary, text: str, unlike: str) -> str | None:
    """`gmp` is declared as an agency: a hint when a name is used as the wrong kind."""
    kinds = declared_kinds(vocab, text, unlike)
    if not kinds:
        return None
    return f"`{text}` is declared as " + " and as ".join(kind_word(k) for k in kinds)
