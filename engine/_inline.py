"""LALR parsing that builds the syntax tree as it reduces, with no parse tree in between.

Lark builds the grammar's LALR table, its terminals and its lexer; this module
runs them in one tight loop for text that parses. Any text that does not is
handed back (`Unparsed`), and the caller parses it with Lark's own parser,
whose errors the syntax error messages are made from.

Lark's own way to give nodes their positions (`propagate_positions`) builds a
`Tree` and a `Meta` for every rule and copies a dozen attributes onto each;
walking that tree again to make ast nodes doubles the work. Here each rule's
callback is handed the positions Lark would have given it, computed from the
children as they are reduced (the first and last child that has a position,
including the keywords and braces that the tree leaves out), and builds its
ast node at once. The positions are exactly Lark's: tests compare the two.

This relies on Lark's parse table and rule builders (`Lark._parse_tree_builder`,
`lark.parsers.lalr_parser._Parser`), stable across Lark 1.2 and 1.3;
`inline_parser` returns None when they are missing, and the caller falls back
to the tree.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from lark import Lark, Token
from lark.lexer import UnlessCallback
from lark.parse_tree_builder import (
    ChildFilter,
    ChildFilterLALR,
    ChildFilterLALR_NoPlaceholders,
    ExpandSingleChild,
    PropagatePositions,
)
from lark.parsers.lalr_analysis import Shift


class Unparsed(Exception):
    """The text does not lex or parse; Lark's own parser will say why."""


class Meta:
    """The positions of one reduced rule, as Lark's `Meta` has them (`empty` when it has none)."""

    __slots__ = ("column", "empty", "end_column", "end_line", "line")

    def __init__(self, line: int, column: int, end_line: int, end_column: int, empty: bool):
        self.line, self.column, self.end_line, self.end_column = line, column, end_line, end_column
        self.empty = empty


_EMPTY = Meta(1, 1, 1, 1, True)
_END = Token("$END", "")  # fed after the last token, as Lark's parser does

Builder = Callable[[Meta, list[Any]], Any]
Reduction = tuple[int, str, Callable[[list[Any]], Any]]
# A rule's child filter: (index, inlined `_rule`?, Nones before it) per kept child, and Nones after.
_Plan = tuple[list[tuple[int, bool, int]], int]


class InlineParser:
    """Runs Lark's LALR table with callbacks that build nodes through `builder_for(rule name)`."""

    def __init__(self, lark: Lark, plans: list[tuple[Any, _Plan | None, bool]]):
        self.lark = lark
        self.plans = plans
        table = lark.parser.parser._parse_table
        start = lark.options.start[0]
        # Each state's actions as plain numbers: the state to shift (or go) to, or the
        # complement (~i) of the rule to reduce by, its position in `plans`.
        number = {rule: i for i, (rule, _plan, _expand) in enumerate(plans)}
        self.actions = {state: {symbol: arg if action is Shift else ~number[arg] for symbol, (action, arg) in row.items()}
                        for state, row in table.states.items()}
        self.start_state = table.start_states[start]
        self.end_state = table.end_states[start]
        connector = lark.parser.lexer
        self.postlex = getattr(connector, "postlexer", None)
        lexer = getattr(connector, "lexer", connector)
        self.patterns = [mre.match for mre in lexer.scanner._mres]
        self.ignore = lexer.ignore_types
        # Blanks that are skipped with no callback and no newline in them (spaces
        # between words) are skipped by the pattern itself, before each token.
        blanks = [t for t in lexer.terminals if t.name in self.ignore and t.name not in lexer.callback
                  and t.name not in lexer.newline_types]
        if len(self.patterns) == 1 and blanks:
            skip = "|".join(t.pattern.to_regexp() for t in blanks)
            mre = lexer.scanner._mres[0]
            self.patterns = [lexer.re.compile(f"(?:{skip})*(?:{mre.pattern})", mre.flags).match]
        self.newline_types = lexer.newline_types
        # Callbacks that only retype a token by its text (a keyword matched as a
        # name) are remembered per text; any other callback runs on every token.
        self.retype = {t: c for t, c in lexer.callback.items() if isinstance(c, UnlessCallback)}
        self.callbacks = {t: c for t, c in lexer.callback.items() if t not in self.retype}
        self.retyped: dict[tuple[str, str], str] = {}

    def parse(self, text: str, builders: Callable[[str], Builder]) -> Any:
        """Parse `text`; each rule's node is `builders(name)(meta, children)`.

        Raises Unparsed when the text has a lexical or syntax error, and whatever a builder raises.
        """
        reductions = self._callbacks(builders)
        tokens = self._tokens(text)
        if self.postlex is not None:
            tokens = self.postlex.process(tokens)
        actions = self.actions
        state_stack = [self.start_state]
        value_stack: list[Any] = []
        end_state = self.end_state
        for token in itertools.chain(tokens, (_END,)):
            type_ = token.type
            while True:
                action = actions[state_stack[-1]].get(type_)
                if action is None:
                    raise Unparsed
                if action >= 0:
                    if token is _END:
                        raise Unparsed
                    state_stack.append(action)
                    value_stack.append(token)
                    break
                size, origin, reduce = reductions[~action]
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(reduce(children))
                state_stack.append(actions[state_stack[-1]][origin])
                if token is _END and state_stack[-1] == end_state:
                    return value_stack[-1]
        raise Unparsed

    def _tokens(self, text: str) -> Iterator[Token]:
        """Lark's basic lexer, as one loop: the same terminals in the same order, the same positions."""
        patterns, ignore, newline_types = self.patterns, self.ignore, self.newline_types
        retype, retyped, callbacks = self.retype, self.retyped, self.callbacks
        single = patterns[0] if len(patterns) == 1 else None
        new_str = str.__new__
        position, line, line_start, length = 0, 1, 0, len(text)
        while position < length:
            if single is not None:
                found = single(text, position)
            else:
                found = next((m for m in (p(text, position) for p in patterns) if m), None)
            if found is None:
                raise Unparsed
            type_ = found.lastgroup
            if type_ is None:
                raise Unparsed  # only blanks were left
            position = found.start(type_)
            value = found.group(type_)
            stop = found.end()
            end_line, end_start = line, line_start
            if type_ in newline_types:
                newlines = value.count("\n")
                if newlines:
                    end_line = line + newlines
                    end_start = position + value.rindex("\n") + 1
            if type_ not in ignore or type_ in callbacks:
                if type_ in retype:
                    key = (type_, value)
                    new = retyped.get(key)
                    if new is None:
                        new = retyped[key] = retype[type_](Token(type_, value)).type
                    type_ = new
                # Token's own constructor, less its two Python calls: a token per word adds up.
                token = new_str(Token, value)
                token.type, token.value, token.start_pos = type_, value, position
                token.line, token.column = line, position - line_start + 1
                token.end_line, token.end_column, token.end_pos = end_line, stop - end_start + 1, stop
                if type_ in callbacks:
                    token = callbacks[type_](token)
                if type_ not in ignore:
                    yield token
            position, line, line_start = stop, end_line, end_start

    def _callbacks(self, builders: Callable[[str], Builder]) -> list[Reduction]:
        """For each grammar rule: how many values it takes off the stack, its name, and its reduction."""
        # One per parse: the state lives in these closures, so threads never share it.
        extents: dict[int, tuple[int, int, int, int]] = {}
        keep: list[Any] = []  # results stay alive, so that their ids are not reused mid-parse
        # One Meta, refilled for each reduction: a builder reads it at once and keeps none of it.
        meta = Meta(1, 1, 1, 1, True)

        def reduction(build: Builder, plan: _Plan | None, expand: bool) -> Callable[[list[Any]], Any]:
            def reduce(children: list[Any]) -> Any:
                # Lark's tokens always carry their positions, though typed as optional.
                first: tuple[Any, ...] | None = None
                last: tuple[Any, ...] | None = None
                for child in children:
                    if type(child) is Token:
                        first = (child.line, child.column)
                        break
                    found = extents.get(id(child))
                    if found is not None:
                        first = found
                        break
                for child in reversed(children):
                    if type(child) is Token:
                        last = (0, 0, child.end_line, child.end_column)
                        break
                    found = extents.get(id(child))
                    if found is not None:
                        last = found
                        break
                # The children the rule keeps, as Lark's child filter leaves them.
                if plan is None:
                    kept = children
                else:
                    kept = []
                    for index, inline, nones in plan[0]:
                        if nones:
                            kept += [None] * nones
                        if inline:
                            kept += children[index].children
                        else:
                            kept.append(children[index])
                    if plan[1]:
                        kept += [None] * plan[1]
                if first is None or last is None:
                    return kept[0] if expand and len(kept) == 1 else build(_EMPTY, kept)
                if expand and len(kept) == 1:
                    result = kept[0]
                else:
                    meta.line, meta.column, meta.end_line, meta.end_column, meta.empty = \
                        first[0], first[1], last[2], last[3], False
                    result = build(meta, kept)
                if result is not None:
                    extents[id(result)] = (first[0], first[1], last[2], last[3])
                    keep.append(result)
                return result

            if expand and plan is None:
                def pass_up(children: list[Any]) -> Any:
                    # A single child passes up as it is, its position known already.
                    return children[0] if len(children) == 1 else reduce(children)

                return pass_up
            return reduce

        callbacks = []
        for rule, plan, expand in self.plans:
            name = rule.alias or rule.options.template_source or rule.origin.name
            callbacks.append((len(rule.expansion), rule.origin.name, reduction(builders(name), plan, expand)))
        return callbacks


_FILTERS = (ChildFilter, ChildFilterLALR, ChildFilterLALR_NoPlaceholders)


def _plans(rule_builders: list[tuple[Any, list[Any]]]) -> list[tuple[Any, _Plan | None, bool]]:
    """Each rule's child filter as data, and whether it passes a single child up (`?rule`).

    Read from the wrappers Lark would chain around the rule's callback; a wrapper
    this module does not know makes it give up (KeyError), and the caller parse with Lark.
    """
    plans = []
    for rule, chain in rule_builders:
        plan: _Plan | None = None
        expand = False
        for wrapper in chain:
            function = getattr(wrapper, "func", wrapper)
            if function is PropagatePositions:
                continue  # `reduce` does its work
            if function is ExpandSingleChild:
                expand = True
            elif function is ChildFilterLALR_NoPlaceholders:
                plan = ([(i, inline, 0) for i, inline in wrapper.args[0]], 0)
            elif function in _FILTERS:
                plan = (list(wrapper.args[0]), wrapper.args[1])
            else:
                raise KeyError(function)
        plans.append((rule, plan, expand))
    return plans


def inline_parser(lark: Lark) -> InlineParser | None:
    """An inline parser over a Lark LALR parser with a basic lexer; None if Lark's internals differ.

    The same Lark parser keeps serving the tree path (with its positions, if it was built with them).
    """
    try:
        return InlineParser(lark, _plans(list(lark._parse_tree_builder.rule_builders)))
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
