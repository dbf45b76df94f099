"""Expression typing for the checker: every `when`/`unless` and obligation
condition is type-checked against the attribute schema before a policy loads.

Operands are attributes (typed by the schema), literals (typed by their
form), nested conditions (true or false), or bare names, which take the type
of the attribute they are compared with (docs/language.md, "Conditions").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from engine import ast
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

    def describe(self) -> str:
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
    return Type(attribute.kind, attribute.values)


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
        """Literals or declared attribute paths only."""
        if not isinstance(value, ast.Name) or value.text in self.vocab.attributes:
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

    def _expr(self, expr) -> Typed:
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

    def _expr_Is(self, expr: ast.Is) -> Typed:
        operand = self._operand(expr.operand)
        if operand.type == NAME:
            self._unknown_attribute(expr.operand)
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

    def _literal(self, expr) -> Typed:
        return self._operand(expr)

    _expr_StringLit = _expr_NumberLit = _expr_BoolLit = _expr_DateLit = _literal

    # --- operands and values ------------------------------------------------

    def _operand(self, value) -> Typed:
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
            case _:
                # `(a or b) == true`: the bracketed condition is already true
                # or false; comparing it is never needed and not compiled.
                self._expr(value)
                self._error("compare_condition", "a condition in brackets cannot be compared", value.span,
                            "use the condition as it is, or `not (…)` for the opposite")
                return Typed(ERROR, "(…)")

    def _value(self, target: Typed, name: ast.Name) -> None:
        """A bare name standing for a value of `target`'s type."""
        kind, text = target.type.kind, name.text
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

    def _not_boolean(self, expr, typed: Typed, keyword: str) -> None:
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

    def _unknown_attribute(self, name: ast.Name) -> None:
        help = self._attribute_hint(name.text)
        if help is None and not _looks_like_attribute(name.text):
            help = "attributes start with `requester.`, `resource.` or `context.`"
        elif help is None:
            help = "declare it in an `attributes { … }` block"
        self._error("unknown_attribute", f"unknown attribute `{name.text}`", name.span, help)

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


def _shown(value) -> str:
    match value:
        case ast.StringLit(value=text):
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        case ast.BoolLit(value=flag):
            return "true" if flag else "false"
        case ast.DateLit(value=date):
            return date.isoformat()
        case ast.NumberLit(value=number):
            return str(number)
        case ast.Name(text=text):
            return text
    return "(…)"


def _literal_key(value) -> object:
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
