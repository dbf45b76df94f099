"""The parser's tables ship beside the grammar, made from it: loading them gives the parser
that building it from the grammar gives, and a grammar edited since is never parsed by
stale tables."""

from __future__ import annotations

import importlib.metadata
import pickle
import random
import sys
from pathlib import Path

import pytest

from engine import syntax
from engine.errors import PolicySyntaxError
from engine.loader import read_sources
from engine.source import Source

sys.path.insert(0, str(Path(__file__).parent))
import policygen  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHIPPED = pickle.loads((REPO / "grammar" / syntax.TABLES).read_bytes())


def test_the_shipped_tables_were_made_from_the_grammar_as_it_is():
    made_from = syntax._tables_key()["grammar"]
    assert SHIPPED["made_from"]["grammar"] == made_from, (
        "grammar/policy.lark changed since its tables were made: "
        "run `python -c \"import engine.syntax as s; s.save_tables()\"` and commit grammar/policy.tables")


def test_the_parser_comes_from_the_shipped_tables_for_the_lark_release_they_were_made_with():
    same_release = SHIPPED["made_from"]["lark"] == importlib.metadata.version("lark")
    assert (syntax._shipped_parser() is not None) == same_release


STALE = pickle.dumps({**SHIPPED, "made_from": {**SHIPPED["made_from"], "grammar": "0" * 64}})
DAMAGED = pickle.dumps({**SHIPPED, "data": {"parser": None}})


@pytest.mark.parametrize("tables", [STALE, DAMAGED, (REPO / "grammar" / syntax.TABLES).read_bytes()[:999],
                                    b"", b"not tables"], ids=["another grammar", "damaged", "cut short", "empty", "text"])
def test_tables_made_from_another_grammar_or_damaged_are_not_used(tables, tmp_path, monkeypatch):
    (tmp_path / syntax.TABLES).write_bytes(tables)
    beside = syntax._grammar_file
    monkeypatch.setattr(syntax, "_grammar_file",
                        lambda name: (tmp_path / name).read_bytes() if name == syntax.TABLES else beside(name))
    assert syntax._shipped_parser() is None


@pytest.mark.parametrize("text", [
    'permit r "R" {\n  action view\n  role nurse\n  because "x"\n}\n',
    'permit r "R" {\n  action view,\n}\n',
    'permit r "R" {\n  when context.age > \n}\n',
    'policy "P" {\n  version "1"\n',
    "actions { view, share }\nroles { a : b at }\n",
    'permit r "R" {\n  when context.x == "unterminated\n}\n',
])
def test_loaded_and_built_parsers_parse_alike(parsers, text, monkeypatch):
    shipped, built = parsers
    assert _parse_with(shipped, text, monkeypatch) == _parse_with(built, text, monkeypatch)


def test_loaded_and_built_parsers_parse_the_example_and_generated_sets_alike(parsers, monkeypatch):
    shipped, built = parsers
    texts = [s.text for s in read_sources(REPO / "policies")]
    texts += [text for seed in range(3) for _name, text in policygen.render_files(policygen.random_model(random.Random(seed)))]
    for text in texts:
        assert _parse_with(shipped, text, monkeypatch) == _parse_with(built, text, monkeypatch)


@pytest.fixture(scope="module")
def parsers():
    shipped = syntax._shipped_parser()
    if shipped is None:
        pytest.skip("the shipped tables were made with another Lark release")
    return shipped, syntax._built_parser()


def _parse_with(parser, text: str, monkeypatch) -> object:
    """The syntax tree, or the syntax error's words and place, with `parser`."""
    monkeypatch.setattr(syntax, "_inline", lambda: syntax.inline_parser(parser))
    try:
        return syntax.parse(Source("t.policy", text))
    except PolicySyntaxError as exc:
        return ("error", exc.message, exc.span.line, exc.span.column, exc.help)
