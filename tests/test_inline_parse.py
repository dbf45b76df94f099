"""The parser builds the syntax tree as it reduces; Lark's parse tree, walked after, is the oracle.

Both must give the same nodes with the same positions (every span: the carets
under an author's mistake depend on them) and the same comments.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import ast, syntax
from engine.errors import PolicySyntaxError
from engine.loader import read_sources
from engine.source import Source, Span

sys.path.insert(0, str(Path(__file__).parent))
import policygen  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _by_tree(source: Source) -> ast.PolicyFile:
    """The file as the tree path parses it (the oracle)."""
    syntax._comments.sink = tokens = []
    try:
        declarations = syntax._ToAst(source).transform(syntax._parser().parse(source.text))
    finally:
        syntax._comments.sink = None
    comments = tuple(ast.Comment(t.value[1:], syntax._token_span(source, t)) for t in tokens)
    return ast.PolicyFile(source.path, tuple(declarations), comments, syntax.parse(source).span)


def _spans(node: Any, path: str = "file") -> list[tuple[str, int, int, int, int]]:
    if isinstance(node, Span):
        return [(path, node.line, node.column, node.end_line, node.end_column)]
    found = []
    if dataclasses.is_dataclass(node):
        for field in dataclasses.fields(node):
            found += _spans(getattr(node, field.name), f"{path}.{field.name}")
    elif isinstance(node, (tuple, list)):
        for i, item in enumerate(node):
            found += _spans(item, f"{path}[{i}]")
    return found


def _same(source: Source) -> None:
    assert syntax._parse_inline(source) is not None, f"{source.path} fell back to the tree"
    fast, oracle = syntax.parse(source), _by_tree(source)
    assert fast == oracle
    assert _spans(fast) == _spans(oracle)
    assert [(c.text, c.span.line, c.span.column) for c in fast.comments] == \
        [(c.text, c.span.line, c.span.column) for c in oracle.comments]


@pytest.mark.parametrize("source", read_sources(REPO / "policies"), ids=lambda s: Path(s.path).name)
def test_example_policies_parse_as_the_tree_does(source: Source) -> None:
    _same(source)


@pytest.mark.parametrize("seed", range(12))
def test_generated_sets_parse_as_the_tree_does(seed: int) -> None:
    model = policygen.random_model(random.Random(seed))
    for name, text in policygen.render_files(model):
        _same(Source(name, text))


def test_layout_comments_and_parentheses_keep_their_positions() -> None:
    text = (
        "# leading comment\n"
        'policy "P" { version "1"   # trailing\n  combine deny-overrides }\n'
        "actions { view,\n  share }\n"
        "roles { a \"A\"\n  b : a }\n"
        "permit r {\n  action view   \n  role a\n"
        "  when (not (context.x == 1\n     or context.y))\n  and has context.z\n"
        '  because "it \\"is\\" so"\n}\n'
    )
    _same(Source("layout.policy", text))


@pytest.mark.parametrize("text", [
    'policy "P" {\n  version "1"\n  version "2"\n}\n',           # a field twice: reported by the builder
    'agreement a {\n  valid 2024-02-30 to 2025-01-01\n}\n',       # not a real date
    "permit r {\n  action view,\n}\n",                            # a list ending with a comma
    "permit r {\n  action view\n",                                 # unclosed block
    "permit r { action view } }\n",                                # a stray brace
    "permit r {\n  when context.x == 'a'\n}\n",                   # a character the lexer refuses
])
def test_mistakes_are_reported_as_the_tree_path_reports_them(text: str) -> None:
    source = Source("bad.policy", text)
    with pytest.raises(PolicySyntaxError) as fast:
        syntax.parse(source)
    with pytest.raises(PolicySyntaxError) as oracle:
        _tree_error(source)
    assert fast.value.to_diagnostic().render() == oracle.value.to_diagnostic().render()


def _tree_error(source: Source) -> None:
    from lark.exceptions import UnexpectedInput

    try:
        _by_tree(source)
    except UnexpectedInput as exc:
        raise syntax._syntax_error(source, exc) from None
