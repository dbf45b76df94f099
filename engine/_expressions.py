"""Compile `when`/`unless` expressions to closures with three-valued logic.

A closure takes the request environment (path -> canonical value, see
request.py) and returns True, False or None: None is *unknown*, the value of
a condition that needs an omitted attribute with no default. Bare names are
values of the attribute they are compared with, resolved here once.
"""

from __future__ import annotations

import datetime as dt
import operator
import weakref
from collections.abc import Callable
from typing import Any

from engine import ast
from engine._codegen import define
from engine.durations import shifter
from engine.request import RAW, RequestSchema
from engine.source import Span
from engine.symbols import NameLookupError, Vocabulary

Env = dict[str, Any]
Test = Callable[[Env], Any]  # -> True | False | None (unknown)

_HIERARCHIES = ("role", "purpose", "category")
_ORDER = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
          ">": operator.gt, ">=": operator.ge}


def negate(test: Test) -> Test:
    """`not`: unknown stays unknown.

    A test built with its negation (a comparison, a membership, a boolean
    attribute) hands that over, saving a call per evaluation.
    """
    twin: Test | None = getattr(test, "negated", None)
    if twin is None:
        back: weakref.ref[Test] | None = getattr(test, "negates", None)
        twin = back() if back is not None else None
    if twin is not None:
        return twin

    def not_(env: Env) -> Any:
        value = test(env)
        return None if value is None else not value

    return _twins(not_, test)


def _twins(test: Test, negated: Test) -> Test:
    """`test` with its negation; the negation leads back to it only weakly.

    Two tests holding each other would be a reference cycle, left for the
    cyclic collector when a reload drops them (engine/pipeline.py freezes a
    large set's objects, so such garbage waits for a full collection). When
    only the negation is kept, negating it again makes a `not` of it, which
    answers the same.
    """
    test.negated = negated  # type: ignore[attr-defined]
    negated.negates = weakref.ref(test)  # type: ignore[attr-defined]
    return test


def _comparisons(symbol: str) -> tuple[Callable[..., Test], Callable[..., Test], Callable[..., Test]]:
    """Closure makers for one comparison operator, written out so that a test runs the
    operator itself rather than calling operator.gt and the like."""
    made: tuple[Callable[..., Test], Callable[..., Test], Callable[..., Test]] = define(
        ("to_constant", "from_constant", "between"), [
            "def to_constant(path, constant):",
            "    def compare_to_constant(env):",
            "        value = env.get(path)",
            f"        return None if value is None else value {symbol} constant",
            "    return compare_to_constant",
            "def from_constant(constant, path):",
            "    def constant_compared(env):",
            "        value = env.get(path)",
            f"        return None if value is None else constant {symbol} value",
            "    return constant_compared",
            "def between(left, right):",
            "    def compare_attributes(env):",
            "        a = env.get(left)",
            "        b = env.get(right)",
            f"        return None if a is None or b is None else a {symbol} b",
            "    return compare_attributes",
        ], {})
    return made


_COMPARE = {symbol: _comparisons(symbol) for symbol in _ORDER}
# The comparison that is false exactly when one is true, for the values a request can give
# (finite numbers, dates, ranks, names): `not a < b` is `a >= b`.
_OPPOSITE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


class ExprCompiler:
    """Turns expression nodes into closures; one compile_<Node> per node type."""

    def __init__(self, vocab: Vocabulary, schema: RequestSchema):
        self.vocab = vocab
        self.schema = schema
        self._reads: dict[str, None] = {}
        self._asks: dict[str, None] = {}

    def condition(self, expr: ast.Expr) -> tuple[Test, tuple[str, ...], tuple[str, ...]]:
        """The closure for a condition, the attribute paths whose values it reads (left to
        right) and those `has` asks about."""
        self._reads, self._asks = {}, {}
        test = self.compile(expr)
        return test, tuple(self._reads), tuple(self._asks)

    def compile(self, expr: ast.Expr) -> Test:
        handler = getattr(self, f"compile_{type(expr).__name__}", None)
        if handler is None:
            raise NameLookupError(f"`{type(expr).__name__}` is not a condition")
        test: Test = handler(expr)
        return test

    def words(self, path: str) -> Callable[[Env], Any]:
        """An obligation argument: the attribute's value as the request names it (None when omitted)."""
        kind = self.vocab.attributes[path].kind
        if kind == "classification":
            names = tuple(self.vocab.classifications)
            return lambda env: None if env.get(path) is None else names[env[path]]
        if kind == "date":
            return lambda env: None if env.get(path) is None else env[path].isoformat()
        return lambda env: env.get(path)

    # --- logic ----------------------------------------------------------------

    def compile_BoolOp(self, expr: ast.BoolOp) -> Test:
        parts = tuple(self.compile(e) for e in expr.operands)
        stop = expr.op == "or"  # `or` stops at true, `and` at false

        def bool_op(env: Env) -> Any:
            unknown = False
            for part in parts:
                value = part(env)
                if value is None:
                    unknown = True
                elif value is stop:
                    return stop
            return None if unknown else not stop

        return bool_op

    def compile_Not(self, expr: ast.Not) -> Test:
        return negate(self.compile(expr.operand))

    def compile_Name(self, expr: ast.Name) -> Test:
        path = self._attribute(expr)

        def attribute(env: Env) -> Any:
            return env.get(path)

        def not_attribute(env: Env) -> Any:
            value = env.get(path)
            return None if value is None else not value

        return _twins(attribute, not_attribute)

    def compile_BoolLit(self, expr: ast.BoolLit) -> Test:
        value = expr.value
        return lambda env: value

    def compile_Has(self, expr: ast.Has) -> Test:
        path = self._attribute(expr.path, self._asks)
        parts = tuple(path.split("."))

        def has(env: Env) -> bool:
            node: Any = env[RAW]
            for part in parts:
                if not isinstance(node, dict):
                    return False
                node = node.get(part)
            return node is not None

        return has

    # --- comparisons --------------------------------------------------------------

    def compile_Compare(self, expr: ast.Compare) -> Test:
        kind = self._kind(expr.left) or self._kind(expr.right)
        left, right = self._operand(expr.left, kind), self._operand(expr.right, kind)
        if isinstance(left, _Const) and isinstance(right, _Const):
            known = left.value is not None and right.value is not None  # None: a date outside the calendar
            value = _ORDER[expr.op](left.value, right.value) if known else None
            return lambda env: value
        if isinstance(left, _Calc) or isinstance(right, _Calc):
            return _twins(_computed(expr.op, left, right), _computed(_OPPOSITE[expr.op], left, right))
        return _twins(_compare(expr.op, left, right), _compare(_OPPOSITE[expr.op], left, right))

    def compile_InAttribute(self, expr: ast.InAttribute) -> Test:
        """`x in S`: exact membership in a set attribute's value (a frozenset); unknown when
        either is missing."""
        operand = _plain(self._operand(expr.operand, self.vocab.attributes[expr.set.text].element))
        members = self._attribute(expr.set)
        if isinstance(operand, _Const):
            value = operand.value

            def has_member(env: Env) -> Any:
                found = env.get(members)
                return None if found is None else value in found

            def lacks_member(env: Env) -> Any:
                found = env.get(members)
                return None if found is None else value not in found

            return _twins(has_member, lacks_member)
        path = operand.path

        def member_of(env: Env) -> Any:
            value = env.get(path)
            found = env.get(members)
            return None if value is None or found is None else value in found

        def not_member_of(env: Env) -> Any:
            value = env.get(path)
            found = env.get(members)
            return None if value is None or found is None else value not in found

        return _twins(member_of, not_member_of)

    def compile_InSet(self, expr: ast.InSet) -> Test:
        kind = self._kind(expr.operand) or next(filter(None, map(self._kind, expr.values)), None)
        operand = _plain(self._operand(expr.operand, kind))
        values = [self._operand(v, kind) for v in expr.values]
        constants = [v for v in values if isinstance(v, _Const)]
        if len(constants) == len(values):
            return self._member(operand, frozenset(v.value for v in constants))
        # A value that is itself an attribute: compare one by one.
        return _any_of(tuple(self.compile_Compare(ast.Compare("==", expr.operand, v, expr.span))
                             for v in expr.values))

    def compile_InGroup(self, expr: ast.InGroup) -> Test:
        operand = _plain(self._operand(expr.operand, "agency"))
        return self._member(operand, self.vocab.agencies_named(expr.group.text))

    def compile_Is(self, expr: ast.Is) -> Test:
        kind = self._kind(expr.operand)
        operand = _plain(self._operand(expr.operand, kind))
        text = expr.node.text
        tree = self.vocab.hierarchy(kind) if kind in _HIERARCHIES else None
        if tree is not None:
            return self._member(operand, tree.descendants[tree.resolve(text)])
        if kind == "agency" and text in self.vocab.groups:
            return self._member(operand, self.vocab.groups[text])
        return self._member(operand, frozenset((self._constant(text, kind),)))

    def _member(self, operand: _Const | _Attr, values: frozenset[Any]) -> Test:
        if isinstance(operand, _Const):
            found = operand.value in values
            return lambda env: found
        path = operand.path

        def member(env: Env) -> Any:
            value = env.get(path)
            return None if value is None else value in values

        def not_member(env: Env) -> Any:
            value = env.get(path)
            return None if value is None else value not in values

        return _twins(member, not_member)

    # --- operands -------------------------------------------------------------------

    def _kind(self, value: ast.Operand) -> str | None:
        if isinstance(value, ast.Name):
            attribute = self.vocab.attributes.get(value.text)
            return attribute.kind if attribute is not None else None
        return None

    def _operand(self, value: ast.Operand, kind: str | None) -> _Const | _Attr | _Calc:
        if isinstance(value, ast.Arithmetic):
            return self._arithmetic(value)
        if isinstance(value, ast.Name):
            if value.text in self.vocab.attributes:
                self._reads[value.text] = None
                return _Attr(value.text)
            return _Const(self._constant(value.text, kind))
        if isinstance(value, (ast.StringLit, ast.NumberLit, ast.BoolLit, ast.DateLit)):
            return _Const(value.value)
        raise NameLookupError("a nested condition cannot be compared")

    def _arithmetic(self, expr: ast.Arithmetic) -> _Const | _Calc:
        """A date moved by a duration: a constant when the date is one, else a computation."""
        if not isinstance(expr.right, ast.DurationLit):
            raise NameLookupError(f"`{expr.op}` needs a date and a duration")
        move = shifter(expr.op, expr.right.amount, expr.right.unit)
        date = self._operand(expr.left, "date")
        if isinstance(date, _Const):
            return _Const(None if date.value is None else move(date.value))
        if isinstance(date, _Attr):
            path = date.path

            def moved(env: Env) -> Any:
                value = env.get(path)
                return None if value is None else move(value)

            return _Calc(moved)
        inner = date.compute

        def moved_again(env: Env) -> Any:
            value = inner(env)
            return None if value is None else move(value)

        return _Calc(moved_again)

    def _constant(self, text: str, kind: str | None) -> Any:
        """A bare name as a value of `kind`, in canonical form."""
        if kind == "classification":
            return self.vocab.classifications[self.vocab.resolve(kind, text)]
        if kind in ("action", "agency", "role", "purpose", "category"):
            return self.vocab.resolve(kind, text)
        return text

    def _attribute(self, name: ast.Name, into: dict[str, None] | None = None) -> str:
        if name.text not in self.vocab.attributes:
            raise NameLookupError(f"unknown attribute `{name.text}`")
        (self._reads if into is None else into)[name.text] = None
        return name.text


def _computed(symbol: str, left: _Const | _Attr | _Calc, right: _Const | _Attr | _Calc) -> Test:
    """A comparison where a side is computed (a date moved by a duration): unknown when either
    side is. Only conditions using date arithmetic take this (slower, general) form."""
    op = _ORDER[symbol]
    first, second = _getter(left), _getter(right)

    def compare_computed(env: Env) -> Any:
        a = first(env)
        if a is None:
            return None
        b = second(env)
        return None if b is None else op(a, b)

    return compare_computed


def _plain(operand: _Const | _Attr | _Calc) -> _Const | _Attr:
    """An operand that must be a value or an attribute (the checker allows no date arithmetic here)."""
    if isinstance(operand, _Calc):
        raise NameLookupError("date arithmetic can only be compared")
    return operand


def _getter(operand: _Const | _Attr | _Calc) -> Callable[[Env], Any]:
    if isinstance(operand, _Calc):
        return operand.compute
    if isinstance(operand, _Attr):
        path = operand.path
        return lambda env: env.get(path)
    value = operand.value
    return lambda env: value


def _compare(symbol: str, left: _Const | _Attr, right: _Const | _Attr) -> Test:
    to_constant, from_constant, between = _COMPARE[symbol]
    if isinstance(right, _Const) and isinstance(left, _Attr):
        return to_constant(left.path, right.value)
    assert isinstance(right, _Attr)  # two constants are folded before they get here
    if isinstance(left, _Const):
        return from_constant(left.value, right.path)
    return between(left.path, right.path)


class _Const:
    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class _Attr:
    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


class _Calc:
    """An operand computed from the request: `compute(env)` is its value, None when unknown."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[Env], Any]):
        self.compute = compute


def _any_of(tests: tuple[Test, ...]) -> Test:
    def any_of(env: Env) -> Any:
        unknown = False
        for test in tests:
            value = test(env)
            if value is True:
                return True
            if value is None:
                unknown = True
        return None if unknown else False

    return any_of


# --- showing values in explanations ---------------------------------------------------


def show(vocab: Vocabulary, path: str, value: Any) -> str:
    """A canonical value as the policy language would write it."""
    attribute = vocab.attributes.get(path)
    kind = attribute.kind if attribute is not None else ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, frozenset):  # a set: its members, as a set default is written
        member = vocab.attributes[path].element if attribute is not None else None
        shown = sorted(_member_text(vocab, member, v) for v in value)
        return "{" + ", ".join(shown) + "}"
    if kind == "classification" and isinstance(value, int):
        return list(vocab.classifications)[value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if kind == "string":
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'  # as the language writes it
    return str(value)


def _member_text(vocab: Vocabulary, kind: str | None, value: Any) -> str:
    if kind == "classification" and isinstance(value, int):
        return list(vocab.classifications)[value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if kind == "string":
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def span_text(span: Span | None, cache: dict[int, list[str]] | None = None) -> str:
    """The source text a span covers, on one line; `cache` keeps each source's lines."""
    if span is None:
        return ""
    cache = {} if cache is None else cache
    key = id(span.source)
    if key not in cache:
        cache[key] = span.source.text.splitlines()
    lines = cache[key][span.line - 1: span.end_line]
    if not lines:
        return ""
    if len(lines) == 1:
        text = lines[0][span.column - 1: span.end_column - 1]
    else:
        text = " ".join([lines[0][span.column - 1:], *lines[1:-1], lines[-1][: span.end_column - 1]])
    return " ".join(text.split())
