"""Parse policy text into the syntax tree: Lark parse tree -> ast nodes."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import pickle
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.grammar import Rule
from lark.lexer import TerminalDef
from lark.tree import Meta

from engine import ast, syntax_hints
from engine._inline import InlineParser, Unparsed, inline_parser
from engine._keywords import keywords
from engine.errors import PolicySyntaxError
from engine.source import Source, Span, point
from engine.syntax_hints import line_column as _line_column
from engine.syntax_hints import open_braces as _open_braces

# Words that may not be used as names (docs/language.md, "Names").
# Words that became keywords after policies were written with them as names: the
# error says so, so an author upgrading knows to rename rather than hunt for a typo.
NEW_KEYWORDS = {"at": "roles held at agencies", "set": "set-valued attributes"}

# Duration units, words of the language only right after a number (`28 days`).
UNITS = {"day": "day", "days": "day", "week": "week", "weeks": "week",
         "month": "month", "months": "month", "year": "year", "years": "year"}

# A line continues after these tokens ...
_CONTINUE_AFTER = frozenset({",", "{", "(", "or", "and", "not", "==", "!=", "<", "<=", ">", ">=", "in", "is",
                             "+", "-"})
# ... or when the next line starts with one of these ...
_CONTINUE_BEFORE = frozenset({"or", "and", ")", "}"})
# ... but a clause or declaration keyword at the start of a line always starts anew.
_STARTS_ANEW = frozenset(
    ["policy", "actions", "roles", "purposes", "categories", "classifications", "agencies", "group", "attributes", "agreement", "permit", "deny", "on", "action", "role", "agency", "purpose", "data", "owner", "under", "when", "unless", "obligation", "because", "parties", "from", "to", "valid", "reference", "version", "combine"]
)


def _word(token: Token) -> str | None:
    """The keyword or punctuation a token is, or None for names and literals."""
    if token.type in ("NAME", "DOTTED", "STRING", "NUMBER", "DATE", "DURATION", "_NL"):
        return None
    value: str = token.value  # as fast as the token itself: this runs for every token
    return value


class _Newlines:
    """Post-lexer: keep only the newlines that end a declaration or clause."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        previous: Token | None = None
        pending: Token | None = None
        for token in _subtractions(stream):
            if token.type == "_NL":
                if pending is None:
                    pending = token
                continue
            if pending is not None:
                if self._keeps(previous, token):
                    yield pending
                pending = None
            yield token
            previous = token
        if pending is not None and previous is not None:
            yield pending

    @staticmethod
    def _keeps(previous: Token | None, following: Token) -> bool:
        if previous is None or _word(previous) == "{":
            return False
        if _word(following) in _STARTS_ANEW:
            return True
        return _word(previous) not in _CONTINUE_AFTER and _word(following) not in _CONTINUE_BEFORE


def _subtractions(stream: Iterator[Token]) -> Iterator[Token]:
    """`x -6 years` is `x - 6 years`: negative durations do not exist, so a number
    with a minus sign followed by a unit is a subtraction (the lexer saw `-6`, `years`)."""
    held: Token | None = None
    for token in stream:
        if held is not None:
            if token.type == "NAME" and token.value in UNITS and token.line == held.line:
                yield Token.new_borrow_pos("MINUS", "-", held)
                duration = Token.new_borrow_pos("DURATION", f"{held.value[1:]} {token.value}", held)
                duration.column, duration.start_pos = (held.column or 0) + 1, (held.start_pos or 0) + 1
                duration.end_line, duration.end_column, duration.end_pos = token.end_line, token.end_column, token.end_pos
                yield duration
                held = None
                continue
            yield held
            held = None
        if token.type == "NUMBER" and token.value.startswith("-") and "." not in token.value:
            held = token
            continue
        yield token
    if held is not None:
        yield held


def grammar_text() -> str:
    """The grammar, from the source tree or from the installed package."""
    return _grammar_file("policy.lark").decode("utf-8")


def _grammar_file(name: str) -> bytes:
    """A file of the grammar's folder, from the source tree or from the installed package."""
    beside = Path(__file__).resolve().parent.parent / "grammar" / name
    if beside.is_file():
        return beside.read_bytes()
    return resources.files("engine.grammar").joinpath(name).read_bytes()


# Comments are skipped by the grammar but kept for the formatter: the lexer
# hands each one to whichever parse is running on this thread.
_comments = threading.local()


def _keep_comment(token: Token) -> Token:
    sink = getattr(_comments, "sink", None)
    if sink is not None:
        sink.append(token)
    return token


def __getattr__(name: str) -> frozenset[str]:
    """`KEYWORDS`: the language's keywords, read from the grammar when first asked for."""
    if name == "KEYWORDS":
        return keywords(_parser())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The grammar's LALR tables, worked out once and shipped beside it: building them
# takes a fifth of a second, about a tenth of a command's start, loading them a
# hundredth. Made for one grammar text and one Lark release (`save_tables`).
TABLES = "policy.tables"


@functools.cache
def _parser() -> Lark:
    return _shipped_parser() or _built_parser()


def _built_parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        postlex=_Newlines(),
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _keep_comment},
    )


def _tables_key() -> dict[str, str]:
    """What the tables were made from: the grammar's text and the Lark release."""
    return {"grammar": hashlib.sha256(_grammar_file("policy.lark")).hexdigest(), "lark": lark.__version__}


def _shipped_parser() -> Lark | None:
    """The parser from the shipped tables; None when they are missing or were made from
    another grammar text or Lark release (the parser is then built from the grammar)."""
    try:
        shipped = pickle.loads(_grammar_file(TABLES))  # a file of this package, as trusted as its code
        if not isinstance(shipped, dict) or shipped.get("made_from") != _tables_key():
            return None
        loaded: Lark = Lark._load_from_dict(  # type: ignore[no-untyped-call]
            shipped["data"], shipped["memo"], postlex=_Newlines(), lexer_callbacks={"COMMENT": _keep_comment})
    except Exception:  # noqa: BLE001 - missing or damaged tables: the grammar still gives the parser
        return None
    return loaded


def save_tables(folder: Path | None = None) -> Path:
    """Work out the parser's tables from the grammar and write them beside it (run after
    changing the grammar or the Lark release: `python -c "import engine.syntax as s; s.save_tables()"`)."""
    built = _built_parser()
    data, memo = built.memo_serialize([TerminalDef, Rule])
    # Given again when the tables are loaded: they are code, not tables.
    data["options"] = {k: v for k, v in data["options"].items() if k not in ("postlex", "lexer_callbacks")}
    path = (folder or Path(__file__).resolve().parent.parent / "grammar") / TABLES
    path.write_bytes(pickle.dumps({"made_from": _tables_key(), "data": data, "memo": memo}, protocol=4))
    return path


def parse(source: Source) -> ast.PolicyFile:
    """Parse one policy file; raise PolicySyntaxError pointing at the mistake."""
    text = source.text
    tokens: list[Token] = []
    _comments.sink = tokens
    try:
        declarations = _parse_inline(source)
        if declarations is None:
            del tokens[:]  # the tree path lexes the comments again
            declarations = _ToAst(source).transform(_parser().parse(text))
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    finally:
        _comments.sink = None
    comments = [ast.Comment(t.value[1:], _token_span(source, t)) for t in tokens]
    whole = Span(source, 1, 1, max(1, text.count("\n") + 1), 1)
    return ast.PolicyFile(source.path, tuple(declarations), tuple(comments), whole)


@functools.cache
def _inline() -> InlineParser | None:
    return inline_parser(_parser())


def _parse_inline(source: Source) -> list[ast.Declaration] | None:
    """The file's declarations, built as the parser reduces; None when the text has a mistake.

    A file with a mistake is parsed again through Lark's tree, so that every
    syntax error is found and worded exactly as before (and the first of
    several is the one reported).
    """
    fast = _inline()
    if fast is None:
        return None
    builder = _ToAst(source)
    try:
        result: list[ast.Declaration] = fast.parse(source.text, lambda name: getattr(builder, name, None)
                                                    or functools.partial(_subtree, name))
    except (Unparsed, PolicySyntaxError):
        return None
    return result


def _subtree(name: str, meta: object, children: list[Any]) -> Tree[Any]:
    """An inlined rule (`_name`): a Tree, whose children its parent takes in."""
    return Tree(name, children)


# --- syntax errors -------------------------------------------------------------

_EXPECTED_WORDS = {
    "NAME": "a name",
    "DOTTED": "a dotted name",
    "STRING": 'a "string"',
    "NUMBER": "a number",
    "DATE": "a date like 2025-06-01",
    "COMPARE": "a comparison",
    "COMBINING": "deny-overrides, permit-overrides or first-applicable",
    "_NL": "a new line",
    "$END": "the end of the file",
}


def _describe_expected(expected: set[str], parser: Lark) -> str:
    words = set()
    for name in expected:
        if name in _EXPECTED_WORDS:
            words.add(_EXPECTED_WORDS[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            words.add(name.lower())
            continue
        words.add(f"`{pattern.value}`" if pattern.type == "str" else name.lower())
    if "a name" in words:
        words.discard("a dotted name")
    ordered = sorted(words)
    if len(ordered) > 6:
        ordered = ordered[:6] + ["..."]
    return ", ".join(ordered)


def _found(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    if token.type == "_NL":
        return "end of line"
    if token.type == "STRING":
        return f"string {token.value}"
    if token.value in keywords(_parser()):
        return f"keyword `{token.value}`"
    return f"`{token.value}`"


def _syntax_error(source: Source, exc: UnexpectedInput) -> PolicySyntaxError:
    parser = _parser()
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = source.text[position] if position < len(source.text) else ""
        span = point(source, exc.line, exc.column)
        if char == '"':
            rest = source.line(exc.line)[exc.column - 1 :]
            return PolicySyntaxError(
                "unterminated string",
                point(source, exc.line, exc.column, len(rest)),
                'a string ends with `"` on the same line; write `\\"` for a quote inside it',
            )
        hint = syntax_hints.unexpected_character(source, exc.line, exc.column, char)
        if hint is not None:
            return PolicySyntaxError(hint.message, hint.span, hint.help)
        return PolicySyntaxError(f"unexpected character `{char}`", span, _char_help(char))
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return _end_of_file(source, exc, parser)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    span = _token_span(source, token)
    if token.type == "_NL":
        line = source.line(token.line).rstrip()
        span = point(source, token.line, len(line) + 1)
    # LALR's own expected set can include tokens of merged states; asking the
    # parser which tokens it would accept here is exact.
    expected = _accepted(exc)
    hint = syntax_hints.unexpected_token(source, token, expected)
    if hint is not None:
        return PolicySyntaxError(hint.message, hint.span, hint.help)
    message = f"unexpected {_found(token)}"
    help = f"expected {_describe_expected(expected, parser)}"
    close = _close_keyword(token.value, expected, parser) if token.type != "STRING" else None
    reserved = keywords(parser)
    if token.type == "DURATION":
        message = f"`{' '.join(token.value.split())}` is a length of time, which can only move a date"
        help = f"write it after a date, like `resource.discharged_on + {' '.join(token.value.split())}`; " \
               "lengths of time are not defaults, set members or obligation arguments"
    elif token.value in NEW_KEYWORDS and ("NAME" in expected or "DOTTED" in expected):
        message = f"`{token.value}` became a keyword (for {NEW_KEYWORDS[token.value]}) and cannot be used as a name"
        help = f"rename it, such as `{token.value}_`, everywhere it is used"
    elif token.value in reserved and ("NAME" in expected or "DOTTED" in expected):
        message = f"`{token.value}` is a keyword and cannot be used as a name"
        help = f"choose another name, such as `{token.value}_`"
    elif close and (token.type == "NAME" or token.value in reserved):
        message = f"unknown word `{token.value}`" if token.type == "NAME" else message
        help = f"did you mean `{close}`?"
    elif _previous_char(source.text, token.start_pos) == "," and ("NAME" in expected or "DOTTED" in expected):
        message = "a list cannot end with `,`"
        span = point(source, *_line_column(source.text, _previous_index(source.text, token.start_pos)))
        help = "remove the `,`, or add the next value after it"
    elif token.value == "}" and not _open_braces(source.text, token.start_pos):
        message = "unexpected `}`: no block is open here"
        help = "remove it, or add the `{` it should close"
    return PolicySyntaxError(message, span, help)


def _end_of_file(source: Source, exc: UnexpectedInput, parser: Lark) -> PolicySyntaxError:
    lines = source.text.rstrip().split("\n")
    span = point(source, len(lines), len(lines[-1]) + 1)
    opened = _open_braces(source.text, len(source.text))
    if opened:
        line, column = _line_column(source.text, opened[-1])
        return PolicySyntaxError(
            "unexpected end of file: a block is not closed", span,
            f"add the `}}` that closes the `{{` at line {line}, column {column}",
        )
    expected = {str(e) for e in exc.expected} if isinstance(exc, UnexpectedEOF) else _accepted(exc)
    return PolicySyntaxError("unexpected end of file", span, f"expected {_describe_expected(expected, parser)}")


def _accepted(exc: UnexpectedInput) -> set[str]:
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except Exception:  # noqa: BLE001, S110 - any failure: fall back to Lark's own (wider) set
            pass
    return set(getattr(exc, "expected", ()))


def _previous_index(text: str, end: int) -> int:
    i = end - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return i


def _previous_char(text: str, end: int) -> str:
    i = _previous_index(text, end)
    return text[i] if i >= 0 else ""


def _is_keyword(terminal: str, parser: Lark) -> bool:
    try:
        pattern = parser.get_terminal(terminal).pattern
    except KeyError:
        return False
    return pattern.type == "str" and pattern.value.isalpha()


def _close_keyword(word: str, expected: set[str], parser: Lark) -> str | None:
    import difflib

    options = [parser.get_terminal(e).pattern.value for e in expected if _is_keyword(e, parser)]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def _char_help(char: str) -> str | None:
    if char == "'":
        return 'strings use double quotes: "like this"'
    if char in "&|!":
        return "write `and`, `or` and `not` as words"
    return None


# --- parse tree -> ast -----------------------------------------------------------


def _token_span(source: Source, token: Token) -> Span:
    # A token from a parse always has its positions; Lark types them optional for tokens made by hand.
    return Span(source, token.line, token.column, token.end_line, token.end_column)  # type: ignore[arg-type]


def _string(token: Token) -> str:
    value: str = token.value
    return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _opt_string(token: Token | None) -> str | None:
    return None if token is None else _string(token)


class _ToAst:
    """Turns Lark's parse tree into ast nodes with spans.

    Each method is named for a grammar rule (or alias) and takes the tree's
    `meta` (positions) and its already transformed children. The walk calls
    them directly: Lark's Transformer with `v_args(meta=True)` rebuilds a
    wrapper on every call, which doubled the time of this stage on large sets.
    """

    def __init__(self, source: Source):
        self.source = source

    def transform(self, tree: Tree[Token]) -> Any:
        children = [self.transform(c) if isinstance(c, Tree) else c for c in tree.children]
        return getattr(self, tree.data)(tree.meta, children)

    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return point(self.source, 1, 1)
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _name(self, token: Token) -> ast.Name:
        return ast.Name(token.value, _token_span(self.source, token))

    def _fail(self, message: str, span: Span, help: str | None = None) -> NoReturn:
        raise PolicySyntaxError(message, span, help)

    # file
    def start(self, meta: Meta, children: list[Any]) -> Any:
        return [c for c in children if c is not None]

    # header
    def policy_header(self, meta: Meta, children: list[Any]) -> Any:
        title, *items = children
        fields: dict[str, Any] = {}
        for key, value, span in (i for i in items if i is not None):
            if key in fields:
                self._fail(f"`{key}` is given twice in the policy header", span)
            fields[key] = value
        return ast.PolicyHeader(
            _string(title), fields.get("version"), fields.get("owner"), fields.get("combine"), self._span(meta),
            tuple((key, span) for key, _value, span in (i for i in items if i is not None)),
        )

    def header_version(self, meta: Meta, children: list[Any]) -> Any:
        return ("version", _string(children[0]), self._span(meta))

    def header_owner(self, meta: Meta, children: list[Any]) -> Any:
        return ("owner", _string(children[0]), self._span(meta))

    def header_combine(self, meta: Meta, children: list[Any]) -> Any:
        return ("combine", ast.Combine(children[0].value), self._span(meta))

    # vocabulary
    def vocab_item(self, meta: Meta, children: list[Any]) -> Any:
        name, label = children
        return ast.VocabItem(self._name(name), _opt_string(label), self._span(meta))

    def _items(self, children: list[Any]) -> tuple[Any, ...]:
        return tuple(c for c in children if c is not None)

    def actions_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.ActionsDecl(self._items(children), self._span(meta))

    def agencies_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.AgenciesDecl(self._items(children), self._span(meta))

    def role_item(self, meta: Meta, children: list[Any]) -> Any:
        name, label, parents, places = children
        return ast.RoleItem(self._name(name), _opt_string(label), parents or (), self._span(meta), places or ())

    def role_parents(self, meta: Meta, children: list[Any]) -> Any:
        return tuple(children)

    role_places = role_parents

    def roles_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.RolesDecl(self._items(children), self._span(meta))

    def tree_node(self, meta: Meta, children: list[Any]) -> Any:
        name, label, *kids = children
        return ast.TreeNode(self._name(name), _opt_string(label), self._items(kids), self._span(meta))

    def purposes_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.PurposesDecl(self._items(children), self._span(meta))

    def categories_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.CategoriesDecl(self._items(children), self._span(meta))

    def classifications_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.ClassificationsDecl(tuple(children), self._span(meta))

    def group_decl(self, meta: Meta, children: list[Any]) -> Any:
        name, *members = children
        return ast.GroupDecl(self._name(name), self._items(members), self._span(meta))

    def attributes_decl(self, meta: Meta, children: list[Any]) -> Any:
        return ast.AttributesDecl(self._items(children), self._span(meta))

    def attribute_decl(self, meta: Meta, children: list[Any]) -> Any:
        path, label, type_, default = children
        return ast.AttributeDecl(self._name(path), type_, default, self._span(meta), _opt_string(label))

    def simple_type(self, meta: Meta, children: list[Any]) -> Any:
        return ast.AttrType(children[0].value, (), self._span(meta))

    def one_of_type(self, meta: Meta, children: list[Any]) -> Any:
        return ast.AttrType("one_of", self._items(children), self._span(meta))

    def set_type(self, meta: Meta, children: list[Any]) -> Any:
        return ast.AttrType("set", (), self._span(meta), children[0])

    def set_literal(self, meta: Meta, children: list[Any]) -> Any:
        return ast.SetLit(self._items(children), self._span(meta))

    def agreement_decl(self, meta: Meta, children: list[Any]) -> Any:
        name, title, *items = children
        fields: dict[str, Any] = {}
        for key, value, span in (i for i in items if i is not None):
            if key in fields:
                self._fail(f"`{key}` is given twice in agreement `{name.value}`", span)
            fields[key] = value
        return ast.AgreementDecl(
            self._name(name),
            _opt_string(title),
            fields.get("parties"),
            fields.get("from"),
            fields.get("to"),
            fields.get("valid"),
            fields.get("reference"),
            self._span(meta),
            tuple((key, span) for key, _value, span in (i for i in items if i is not None)),
        )

    def agreement_parties(self, meta: Meta, children: list[Any]) -> Any:
        return ("parties", children[0], self._span(meta))

    def agreement_from(self, meta: Meta, children: list[Any]) -> Any:
        return ("from", children[0], self._span(meta))

    def agreement_to(self, meta: Meta, children: list[Any]) -> Any:
        return ("to", children[0], self._span(meta))

    def agreement_valid(self, meta: Meta, children: list[Any]) -> Any:
        start, end = (ast.DateLit(self._date(t), _token_span(self.source, t)) for t in children)
        return ("valid", ast.Validity(start, end, self._span(meta)), self._span(meta))

    def agreement_reference(self, meta: Meta, children: list[Any]) -> Any:
        return ("reference", _string(children[0]), self._span(meta))

    # rules
    def effect(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Effect(children[0].value)

    def outcome(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Outcome(children[0].value)

    def rule(self, meta: Meta, children: list[Any]) -> Any:
        effect, name, description, *clauses = children
        return ast.Rule(effect, self._name(name), _opt_string(description), self._items(clauses), self._span(meta))

    def refs(self, meta: Meta, children: list[Any]) -> Any:
        return tuple(children)

    def _match(self, kind: ast.ClauseKind, meta: Meta, children: list[Any]) -> ast.MatchClause:
        return ast.MatchClause(kind, children[0], self._span(meta))

    def action_clause(self, meta: Meta, children: list[Any]) -> Any:
        return self._match(ast.ClauseKind.ACTION, meta, children)

    def role_clause(self, meta: Meta, children: list[Any]) -> Any:
        return self._match(ast.ClauseKind.ROLE, meta, children)

    def agency_clause(self, meta: Meta, children: list[Any]) -> Any:
        return self._match(ast.ClauseKind.AGENCY, meta, children)

    def purpose_clause(self, meta: Meta, children: list[Any]) -> Any:
        return self._match(ast.ClauseKind.PURPOSE, meta, children)

    def owner_clause(self, meta: Meta, children: list[Any]) -> Any:
        return self._match(ast.ClauseKind.OWNER, meta, children)

    def under_clause(self, meta: Meta, children: list[Any]) -> Any:
        return self._match(ast.ClauseKind.UNDER, meta, children)

    def data_clause(self, meta: Meta, children: list[Any]) -> Any:
        categories, up_to = children
        return ast.DataClause(categories, up_to, self._span(meta))

    def data_any_clause(self, meta: Meta, children: list[Any]) -> Any:
        return ast.DataClause((), children[0], self._span(meta))

    def when(self, meta: Meta, children: list[Any]) -> Any:
        return ast.ConditionClause(False, children[0], self._span(meta))

    def unless(self, meta: Meta, children: list[Any]) -> Any:
        return ast.ConditionClause(True, children[0], self._span(meta))

    def because_clause(self, meta: Meta, children: list[Any]) -> Any:
        return ast.BecauseClause(_string(children[0]), self._span(meta))

    def obligation(self, meta: Meta, children: list[Any]) -> Any:
        name, *rest = children
        condition = rest.pop() if rest else None
        args = tuple(a for a in rest if a is not None)
        return ast.ObligationClause(name.value, args, condition, self._span(meta))

    def policy_obligation(self, meta: Meta, children: list[Any]) -> Any:
        outcome, obligation = children
        return ast.PolicyObligation(outcome, obligation, self._span(meta))

    # expressions
    def or_expr(self, meta: Meta, children: list[Any]) -> Any:
        return ast.BoolOp("or", tuple(children), self._span(meta))

    def and_expr(self, meta: Meta, children: list[Any]) -> Any:
        return ast.BoolOp("and", tuple(children), self._span(meta))

    def not_op(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Not(children[0], self._span(meta))

    def compare(self, meta: Meta, children: list[Any]) -> Any:
        left, op, right = children
        return ast.Compare(op, left, right, self._span(meta))

    def compare_op(self, meta: Meta, children: list[Any]) -> Any:
        return children[0].value

    def in_set(self, meta: Meta, children: list[Any]) -> Any:
        operand, *values = children
        return ast.InSet(operand, self._items(values), self._span(meta))

    def in_group(self, meta: Meta, children: list[Any]) -> Any:
        operand, group = children
        if "." in group.text:  # groups are plain names; a dotted path is a `set of` attribute
            return ast.InAttribute(operand, group, self._span(meta))
        return ast.InGroup(operand, group, self._span(meta))

    def add(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Arithmetic("+", children[0], children[1], self._span(meta))

    def subtract(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Arithmetic("-", children[0], children[1], self._span(meta))

    def duration(self, meta: Meta, children: list[Any]) -> Any:
        token = children[0]
        amount, unit = token.value.split()
        return ast.DurationLit(int(amount), UNITS[unit], _token_span(self.source, token))

    def is_op(self, meta: Meta, children: list[Any]) -> Any:
        operand, node = children
        return ast.Is(operand, node, self._span(meta))

    def has_op(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Has(children[0], self._span(meta))

    # values
    def name(self, meta: Meta, children: list[Any]) -> Any:
        return self._name(children[0])

    builtin_path = name

    def string(self, meta: Meta, children: list[Any]) -> Any:
        return ast.StringLit(_string(children[0]), self._span(meta))

    def number(self, meta: Meta, children: list[Any]) -> Any:
        text = children[0].value
        try:
            value = float(text) if "." in text else int(text)
        except ValueError:  # Python refuses to read integers of over 4,300 digits
            self._fail(f"number of {len(text.lstrip('-')):,} digits is too long", self._span(meta),
                       "a number in a policy has at most 4,300 digits")
        return ast.NumberLit(value, self._span(meta))

    def date(self, meta: Meta, children: list[Any]) -> Any:
        return ast.DateLit(self._date(children[0]), self._span(meta))

    def true(self, meta: Meta, children: list[Any]) -> Any:
        return ast.BoolLit(True, self._span(meta))

    def false(self, meta: Meta, children: list[Any]) -> Any:
        return ast.BoolLit(False, self._span(meta))

    def _date(self, token: Token) -> dt.date:
        try:
            return dt.date.fromisoformat(token.value)
        except ValueError:
            self._fail(f"`{token.value}` is not a real date", _token_span(self.source, token),
                       syntax_hints.date_help(token.value))
