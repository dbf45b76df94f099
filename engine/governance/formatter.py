"""Format policy files: syntax tree and comments -> canonical text (`engine fmt`).

The layout comes from the tree alone, so two files that mean the same are laid
out the same. Comments are not in the tree: each output line is a *unit* that
remembers which source lines it stands for, and every comment is attached to a
unit by position - on its own line before the nearest following unit, or at
the end of the unit whose line it trailed. No comment is ever dropped.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import ast
from engine.durations import duration_text
from engine.source import Source, Span
from engine.syntax import parse

WIDTH = 88
_CLAUSE = 12  # rule clause values start here: `obligation` and two spaces
_AGREEMENT = 10  # `reference` and a space
_HEADER = 8  # `version`, `combine` and a space
_OUTCOME = 6  # `permit`: `on any    obligation` lines up with `on permit obligation`


# --- values and expressions ---------------------------------------------------


def quote(text: str) -> str:
    """A string literal for `text`, escaping `\\` and `"`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _number(lit: ast.NumberLit) -> str:
    """A number as its author wrote it (`1.50` stays `1.50`)."""
    span = lit.span
    if span is not None and span.line == span.end_line:
        written = _line(span.source, span.line)[span.column - 1 : span.end_column - 1]
        if _NUMBER.fullmatch(written) and float(written) == lit.value:
            return written
    return repr(lit.value)


@functools.lru_cache(maxsize=16)
def _split(text: str) -> list[str]:
    return text.split("\n")


def _line(source: Source, number: int) -> str:
    """Line `number` as the parser counts lines (Source.line also splits at form feeds)."""
    lines = _split(source.text)
    return lines[number - 1].rstrip("\r") if 0 < number <= len(lines) else ""


def value_text(value: ast.Value | ast.DurationLit | ast.SetLit) -> str:
    match value:
        case ast.Name():
            return value.text
        case ast.StringLit():
            return quote(value.value)
        case ast.NumberLit():
            return _number(value)
        case ast.BoolLit():
            return "true" if value.value else "false"
        case ast.DateLit():
            return value.value.isoformat()
        case ast.DurationLit():
            return duration_text(value.amount, value.unit)
        case ast.SetLit():
            return "{" + ", ".join(value_text(v) for v in value.values) + "}"
    raise TypeError(f"no layout for {type(value).__name__}")


# Binding strength, loosest first: a child looser than its place needs parentheses.
_OR, _AND, _NOT, _COMPARE, _SUM, _ATOM = range(1, 7)


def expr_text(expr: ast.Expr) -> str:
    """An expression on one line, with only the parentheses its meaning needs."""
    return _expr(expr)[0]


def _operand(expr: ast.Expr, needs: int) -> str:
    text, strength = _expr(expr)
    return f"({text})" if strength < needs else text


def _expr(expr: ast.Expr) -> tuple[str, int]:
    match expr:
        case ast.BoolOp(op=op, operands=operands):
            # A nested `and` inside `and` keeps its parentheses: it is a different tree.
            strength = _OR if op == "or" else _AND
            return f" {op} ".join(_operand(o, strength + 1) for o in operands), strength
        case ast.Not(operand=operand):
            return f"not {_operand(operand, _NOT)}", _NOT
        case ast.Compare(op=op, left=left, right=right):
            return f"{_operand(left, _SUM)} {op} {_operand(right, _SUM)}", _COMPARE
        case ast.Arithmetic(op=op, left=left, right=right):
            # Left to right: `a + 1 month - 1 day` needs no brackets; a bracketed right side keeps them.
            return f"{_operand(left, _SUM)} {op} {_operand(right, _ATOM)}", _SUM
        case ast.InAttribute(operand=operand, set=members):
            return f"{_operand(operand, _ATOM)} in {members.text}", _COMPARE
        case ast.InSet(operand=operand, values=values):
            listed = ", ".join(_operand(v, _ATOM) for v in values)
            return f"{_operand(operand, _ATOM)} in {{{listed}}}", _COMPARE
        case ast.InGroup(operand=operand, group=group):
            return f"{_operand(operand, _ATOM)} in {group.text}", _COMPARE
        case ast.Is(operand=operand, node=node):
            return f"{_operand(operand, _ATOM)} is {node.text}", _COMPARE
        case ast.Has(path=path):
            return f"has {path.text}", _COMPARE
    return value_text(expr), _ATOM


def _wrapped_expr(prefix: str, expr: ast.Expr) -> list[str]:
    """`prefix` and the expression. A long `and`/`or`, or one the author wrote one operand a
    line, puts one operand a line, each continuation line starting with its operator (a line
    that starts with `and` or `or` always continues the one before)."""
    text = expr_text(expr)
    if not isinstance(expr, ast.BoolOp):
        return [prefix + text]
    if len(prefix) + len(text) <= WIDTH and not _vertical([o.span for o in expr.operands]):
        return [prefix + text]
    strength = _OR if expr.op == "or" else _AND
    parts = [_operand(o, strength + 1) for o in expr.operands]
    pad = " " * len(prefix)
    return [prefix + parts[0], *(f"{pad}{expr.op} {part}" for part in parts[1:])]


def _vertical(spans: list[Span]) -> bool:
    """Items the author wrote one a line (two or more): that layout is kept."""
    lines = [span.line for span in spans]
    return len(lines) > 1 and len(set(lines)) == len(lines)


def _pack(first: str, rest: str, words: list[str], vertical: bool = False) -> list[str]:
    """Comma-separated words filling lines up to WIDTH (one a line when `vertical`);
    wrapped lines end in `,`."""
    lines: list[str] = []
    line, empty = first, True
    for i, word in enumerate(words):
        piece = word + ("," if i < len(words) - 1 else "")
        if not empty and (vertical or len(line) + 1 + len(piece) > WIDTH):
            lines.append(line)
            line = rest + piece
        else:
            line += ("" if empty else " ") + piece
        empty = False
    lines.append(line)
    return lines


def _obligation_head(obligation: ast.ObligationClause) -> str:
    args = ", ".join(value_text(a) for a in obligation.args)
    return f"{obligation.name} {args}" if args else obligation.name


def _obligation_lines(prefix: str, obligation: ast.ObligationClause) -> list[str]:
    head = prefix + _obligation_head(obligation)
    condition = obligation.condition
    if condition is None:
        return [head]
    word = "unless" if condition.negated else "when"
    return _wrapped_expr(f"{head} {word} ", condition.expr)


# --- units: output lines that remember their source lines ---------------------


@dataclass(eq=False)
class _Unit:
    lines: list[str]  # fully indented
    first: int  # the source lines the unit stands for
    last: int
    indent: int  # where comments placed before it start
    closing: bool = False  # a lone `}`: takes a trailing comment only when nothing else can
    top: bool = False  # the first unit of a top-level declaration
    run: str | None = None  # declarations of one kind that sit together without blank lines
    align: int | None = None  # trailing comments of units with one key line up
    leading: list[ast.Comment] = field(default_factory=list)
    trailing: list[ast.Comment] = field(default_factory=list)


# Kinds of declaration whose neighbours of the same kind are not parted by a blank line.
_RUNS = {ast.GroupDecl: "group", ast.PolicyObligation: "on"}

_Entry = tuple[str, object, Span]  # ("plain", name, span) | ("row", text, span) | ("nested", TreeNode, span)


class _Layout:
    """Lays out one file's declarations as units."""

    def __init__(self, policy_file: ast.PolicyFile):
        self.file = policy_file
        self.units: list[_Unit] = []
        self._keys = itertools.count()
        self._group_width: dict[int, int] = {}

    def run(self) -> list[_Unit]:
        declarations = self.file.declarations
        self._measure_groups(declarations)
        previous_run, key = None, None
        for decl in declarations:
            start = len(self.units)
            handler: Callable[..., Any] | None = getattr(self, f"_{type(decl).__name__}", None)
            if handler is None:
                raise TypeError(f"no layout for {type(decl).__name__}")
            handler(decl)
            head = self.units[start]
            head.top, head.run = True, _RUNS.get(type(decl))
            if head.run is None or head.run != previous_run:
                key = next(self._keys)
            if head.run is not None:
                head.align = key
            previous_run = head.run
        return self.units

    def _measure_groups(self, declarations: Iterable[ast.Declaration]) -> None:
        """Neighbouring groups line up their `=`."""
        for is_group, run in itertools.groupby(declarations, key=lambda d: isinstance(d, ast.GroupDecl)):
            if is_group:
                groups = [d for d in run if isinstance(d, ast.GroupDecl)]
                width = max(len(d.name.text) for d in groups)
                self._group_width.update((id(d), width) for d in groups)

    def add(self, lines: list[str], first: int, last: int, indent: int, **kw: Any) -> _Unit:
        unit = _Unit(lines, first, last, indent, **kw)
        self.units.append(unit)
        return unit

    def _one(self, text: str, span: Span, indent: int = 0, **kw: Any) -> _Unit:
        return self.add([" " * indent + text], span.line, span.end_line, indent, **kw)

    def _open(self, text: str, span: Span, indent: int) -> int:
        self.add([" " * indent + text + " {"], span.line, span.line, indent)
        return next(self._keys)

    def _close(self, span: Span, indent: int) -> None:
        self.add([" " * indent + "}"], span.end_line, span.end_line, indent + 2, closing=True)

    # header and agreements: fields in canonical order, lines found by scanning

    def _PolicyHeader(self, decl: ast.PolicyHeader) -> None:
        fields = [
            ("version", _maybe(quote, decl.version)),
            ("owner", _maybe(quote, decl.owner)),
            ("combine", _maybe(lambda c: c.value, decl.combine)),
        ]
        self._keyed_block(f"policy {quote(decl.title)}", decl.span, decl.field_spans, fields, _HEADER)

    def _AgreementDecl(self, decl: ast.AgreementDecl) -> None:
        valid = decl.valid
        fields = [
            ("parties", _maybe(_texts, decl.parties)),
            ("from", _maybe(_texts, decl.sources)),
            ("to", _maybe(_texts, decl.recipients)),
            ("valid", valid and f"{value_text(valid.start)} to {value_text(valid.end)}"),
            ("reference", _maybe(quote, decl.reference)),
        ]
        head = f"agreement {decl.name.text}" + (f" {quote(decl.title)}" if decl.title is not None else "")
        self._keyed_block(head, decl.span, decl.field_spans, fields, _AGREEMENT)

    def _keyed_block(self, head: str, span: Span, written: tuple[tuple[str, Span], ...],
                     fields: list[tuple[str, Any]], width: int) -> None:
        present = [(k, v) for k, v in fields if v is not None]
        if not present:
            self._one(head + " {}", span)
            return
        key = self._open(head, span, 0)
        where = {name: (at.line, at.end_line) for name, at in written}
        for name, value in present:
            first, last = where.get(name, (span.line, span.line))
            prefix = "  " + name.ljust(width - 1) + " "
            lines = _pack(prefix, " " * len(prefix), value) if isinstance(value, list) else [prefix + value]
            self.add(lines, first, last, 2, align=key)
        self._close(span, 0)

    # vocabulary

    def _ActionsDecl(self, decl: ast.ActionsDecl) -> None:
        self._block("actions", decl.span, _vocab_entries(decl.items), 0)

    def _AgenciesDecl(self, decl: ast.AgenciesDecl) -> None:
        self._block("agencies", decl.span, _vocab_entries(decl.items), 0)

    def _RolesDecl(self, decl: ast.RolesDecl) -> None:
        self._block("roles", decl.span, _role_entries(decl.items), 0)

    def _PurposesDecl(self, decl: ast.PurposesDecl) -> None:
        self._block("purposes", decl.span, _tree_entries(decl.nodes, 2), 0)

    def _CategoriesDecl(self, decl: ast.CategoriesDecl) -> None:
        self._block("categories", decl.span, _tree_entries(decl.nodes, 2), 0)

    def _block(self, head: str, span: Span, entries: list[_Entry], indent: int) -> None:
        """`head { ... }`: on one line when every entry is a plain name and it fits;
        otherwise one entry a line, runs of plain names packed together, unless the author
        wrote every entry on a line of its own."""
        if _vertical([entry_span for _, _, entry_span in entries]):
            entries = [("row", payload, entry_span) if kind == "plain" else (kind, payload, entry_span)
                       for kind, payload, entry_span in entries]
        if all(kind == "plain" for kind, _, _ in entries):
            names = ", ".join(str(name) for _, name, _ in entries)
            text = f"{head} {{ {names} }}" if entries else f"{head} {{}}"
            if indent + len(text) <= WIDTH:
                self._one(text, span, indent)
                return
        key = self._open(head, span, indent)
        inner = indent + 2
        for plain, grouped in itertools.groupby(entries, key=lambda e: e[0] == "plain"):
            run = list(grouped)
            if plain:
                pad = " " * inner
                lines = _pack(pad, pad, [str(name) for _, name, _ in run])
                self.add(lines, run[0][2].line, run[-1][2].end_line, inner, align=key)
                continue
            for kind, payload, item_span in run:
                if kind == "row":
                    self._one(str(payload), item_span, inner, align=key)
                else:
                    node: ast.TreeNode = payload  # type: ignore[assignment]
                    self._block(_node_head(node), node.span, _tree_entries(node.children, inner + 2), inner)
        self._close(span, indent)

    def _ClassificationsDecl(self, decl: ast.ClassificationsDecl) -> None:
        levels = [_labelled(item.name.text, item.label) for item in decl.levels]
        prefix = "classifications "
        lines = [prefix + levels[0]]
        for level in levels[1:]:
            if len(lines[-1]) + 3 + len(level) > WIDTH:
                lines[-1] += " <"
                lines.append(" " * len(prefix) + level)
            else:
                lines[-1] += " < " + level
        self.add(lines, decl.span.line, decl.span.end_line, 0)

    def _GroupDecl(self, decl: ast.GroupDecl) -> None:
        head = f"group {decl.name.text.ljust(self._group_width.get(id(decl), 0))} = "
        members = [m.text for m in decl.members]
        text = head + ("{ " + ", ".join(members) + " }" if members else "{}")
        vertical = _vertical([m.span for m in decl.members])
        lines = [text] if len(text) <= WIDTH and not vertical else [head + "{", *_pack("  ", "  ", members, vertical), "}"]
        self.add(lines, decl.span.line, decl.span.end_line, 0)

    def _AttributesDecl(self, decl: ast.AttributesDecl) -> None:
        if not decl.items:
            self._one("attributes {}", decl.span)
            return
        key = self._open("attributes", decl.span, 0)
        types = [_type_text(item.type) for item in decl.items]
        heads = [_labelled(item.path.text, item.label) for item in decl.items]
        path_width = max(len(head) for head in heads)
        type_width = max((len(t) for t, i in zip(types, decl.items) if i.default is not None), default=0)
        for item, head, type_ in zip(decl.items, heads, types):
            text = f"{head.ljust(path_width)} {type_}"
            if item.default is not None:
                text = f"{text.ljust(path_width + 1 + type_width)} default {value_text(item.default)}"
            self._one(text, item.span, 2, align=key)
        self._close(decl.span, 0)

    # rules and obligations

    def _Rule(self, decl: ast.Rule) -> None:
        head = f"{decl.effect.value} {decl.id.text}"
        if decl.description is not None:
            head += f" {quote(decl.description)}"
        if not decl.clauses:
            self._one(head + " {}", decl.span)
            return
        key = self._open(head, decl.span, 0)
        for clause in decl.clauses:
            self.add(_clause_lines(clause), clause.span.line, clause.span.end_line, 2, align=key)
        self._close(decl.span, 0)

    def _PolicyObligation(self, decl: ast.PolicyObligation) -> None:
        prefix = f"on {decl.outcome.value.ljust(_OUTCOME)} obligation "
        self.add(_obligation_lines(prefix, decl.obligation), decl.span.line, decl.span.end_line, 0)


def _maybe(convert: Callable[..., Any], value: Any) -> Any:
    return None if value is None else convert(value)


def _texts(names: tuple[ast.Name, ...]) -> list[str]:
    return [n.text for n in names]


def _labelled(name: str, label: str | None) -> str:
    return f"{name} {quote(label)}" if label is not None else name


def _vocab_entries(items: tuple[ast.VocabItem, ...]) -> list[_Entry]:
    width = max((len(i.name.text) for i in items if i.label is not None), default=0)
    return [
        ("plain", i.name.text, i.span) if i.label is None else ("row", f"{i.name.text.ljust(width)} {quote(i.label)}", i.span)
        for i in items
    ]


def _role_entries(items: tuple[ast.RoleItem, ...]) -> list[_Entry]:
    rows = [i for i in items if i.label is not None or i.parents or i.places]
    names = max((len(i.name.text) for i in rows), default=0)
    labels = max((len(quote(i.label)) for i in rows if i.label is not None), default=0)
    entries: list[_Entry] = []
    for item in items:
        if item not in rows:
            entries.append(("plain", item.name.text, item.span))
            continue
        text = item.name.text.ljust(names)
        if labels:
            text += " " + (quote(item.label) if item.label is not None else "").ljust(labels)
        if item.parents:
            text += " : " + ", ".join(p.text for p in item.parents)
        if item.places:
            text = text.rstrip() + " at " + ", ".join(p.text for p in item.places)
        entries.append(("row", text.rstrip(), item.span))
    return entries


def _node_head(node: ast.TreeNode) -> str:
    return _labelled(node.name.text, node.label)


def _tree_entries(nodes: tuple[ast.TreeNode, ...], indent: int) -> list[_Entry]:
    """A node with only plain children fits on its line (`a { b, c }`) or nests."""
    entries: list[_Entry] = []
    for node in nodes:
        if not node.children:
            kind = "plain" if node.label is None else "row"
            entries.append((kind, _node_head(node), node.span))
            continue
        if all(not c.children and c.label is None for c in node.children):
            text = f"{_node_head(node)} {{ {', '.join(c.name.text for c in node.children)} }}"
            if indent + len(text) <= WIDTH:
                entries.append(("row", text, node.span))
                continue
        entries.append(("nested", node, node.span))
    return entries


def _type_text(type_: ast.AttrType) -> str:
    if type_.kind == "set" and type_.element is not None:
        return "set of " + _type_text(type_.element)
    if type_.kind != "one_of":
        return type_.kind
    values = ", ".join(_labelled(v.name.text, v.label) for v in type_.values)
    return f"one of {{ {values} }}" if values else "one of {}"


def _clause_lines(clause: ast.Clause) -> list[str]:
    def prefix(word: str) -> str:
        return "  " + word.ljust(_CLAUSE)

    match clause:
        case ast.MatchClause(kind=kind, values=values):
            return _pack(prefix(kind.value), " " * (2 + _CLAUSE), [v.text for v in values],
                         _vertical([v.span for v in values]))
        case ast.DataClause(categories=categories, up_to=up_to):
            words = [c.text for c in categories] or ["any"]
            if up_to is not None:
                words[-1] += f" up to {up_to.text}"
            return _pack(prefix("data"), " " * (2 + _CLAUSE), words, _vertical([c.span for c in categories]))
        case ast.ConditionClause(negated=negated, expr=expr):
            return _wrapped_expr(prefix("unless" if negated else "when"), expr)
        case ast.ObligationClause():
            return _obligation_lines(prefix("obligation"), clause)
        case ast.BecauseClause(text=text):
            return [prefix("because") + quote(text)]
    raise TypeError(f"no layout for {type(clause).__name__}")


# --- comments -----------------------------------------------------------------


def _is_trailing(comment: ast.Comment) -> bool:
    span = comment.span
    return _line(span.source, span.line)[: span.column - 1].strip() != ""


def _attach(units: list[_Unit], comments: Iterable[ast.Comment]) -> list[ast.Comment]:
    """Give each comment to a unit; return those that follow every unit."""
    tail: list[ast.Comment] = []
    for comment in comments:
        line = comment.span.line
        if _is_trailing(comment):
            holders = [u for u in units if u.first <= line <= u.last]
            if holders:
                # The innermost construct on that line, a closing brace last; ties go to the later one.
                min(reversed(holders), key=lambda u: (u.closing, u.last - u.first)).trailing.append(comment)
                continue
        inside = [u for u in units if u.first < line <= u.last]
        if inside:
            min(reversed(inside), key=lambda u: u.last - u.first).leading.append(comment)
            continue
        following = [u for u in units if u.first > line]
        if following:
            min(following, key=lambda u: u.first).leading.append(comment)
        else:
            tail.append(comment)
    return tail


def _comment_text(comment: ast.Comment) -> str:
    return "#" + comment.text.rstrip()


def _position(comment: ast.Comment) -> tuple[int, int]:
    return comment.span.line, comment.span.column


def _blank_between(source: Source, above: int, below: int) -> bool:
    return any(_line(source, n).strip() == "" for n in range(above + 1, below))


def _comment_block(comments: list[ast.Comment], before: int | None, source: Source) -> list[str]:
    """Top-level comments keep the blank lines that parted them in the source."""
    lines: list[str] = []
    for i, comment in enumerate(comments):
        if i and _blank_between(source, comments[i - 1].span.line, comment.span.line):
            lines.append("")
        lines.append(_comment_text(comment))
    if comments and before is not None and _blank_between(source, comments[-1].span.line, before):
        lines.append("")
    return lines


def _emit(units: list[_Unit], tail: list[ast.Comment], source: Source) -> str:
    columns: dict[int, int] = {}
    for unit in units:
        if unit.trailing and unit.align is not None:
            columns[unit.align] = max(columns.get(unit.align, 0), len(unit.lines[-1]) + 2)
    out: list[str] = []
    previous_run = None
    for unit in units:
        # Only the last comment can trail the unit's line; earlier ones move above it.
        before = sorted(unit.leading + unit.trailing[:-1], key=_position)
        if unit.top:
            if out and not (unit.run is not None and unit.run == previous_run and not before):
                out.append("")
            previous_run = unit.run
            out.extend(_comment_block(before, unit.first, source))
        else:
            out.extend(" " * unit.indent + _comment_text(c) for c in before)
        lines = list(unit.lines)
        if unit.trailing:
            column = columns.get(unit.align, 0) if unit.align is not None else len(lines[-1]) + 2
            lines[-1] = lines[-1].ljust(column) + _comment_text(unit.trailing[-1])
        out.extend(lines)
    if tail:
        if out:
            out.append("")
        out.extend(_comment_block(sorted(tail, key=_position), None, source))
    return "\n".join(out) + "\n" if out else ""


# --- the public entry points ----------------------------------------------------


def format_file(policy_file: ast.PolicyFile) -> str:
    """The canonical text of a parsed file, its comments kept."""
    units = _Layout(policy_file).run()
    tail = _attach(units, policy_file.comments)
    return _emit(units, tail, policy_file.span.source)


def format_source(source: Source) -> str:
    """Parse and lay out one file; raises PolicySyntaxError when it does not parse."""
    return format_file(parse(source))


def format_text(text: str, path: str = "<text>") -> str:
    return format_source(Source(path, text))


# --- `engine fmt` -----------------------------------------------------------------
