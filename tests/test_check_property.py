import functools
import re
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ast, checker, loader
from engine.commands.check import run_check
from engine.errors import Diagnostic, PolicyError
from engine.source import Source
from engine.syntax import KEYWORDS, parse

EXTRA_SEED = """\
attributes {
  context.level classification default official
  context.kind one of { a, b } default a
}
group g = { gmp, council }
agreement x { from gp_practices
  to gmp
  valid 2020-01-01 to 2021-01-01 }
on any obligation note requester.agency, "text", 3, 2025-01-01, true when context.kind == a
permit p "d" {
  data any up to secret
  when (context.level < official or not has context.kind) and requester.agency in g
  unless resource.category is health and purpose in {research}
  obligation o resource.owner unless requester.role is gp
  because "r"
}
"""

# Tokens of the language, so mutations stay close to real policies.
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\d{4}-\d{2}-\d{2}|[A-Za-z][\w.]*|-?\d+(?:\.\d+)?|[<>=!]=|#[^\n]*|\s+|\S')
PIECES = sorted(KEYWORDS) + list("{}(),:<>=.#\"'\n") + [
    "==", "!=", "<=", ">=", "deny-overrides", "2025-13-01", "2025-06-01", '"x"', '"', "\\", "-1", "1.5",
    "gp", "health", "safeguarding.children", "requester.role", "context.consent", "given", "partners",
    "gm_safeguarding_isa", "requester.vetted", "resource.owner", "a.b.c", "\t", "\r\n", "é", "\x00",
    "9" * 4301, "-" + "1" * 5000,  # past Python's limit on reading integers
]


@st.composite
def extreme_addition(draw, text: str) -> str:
    """The file with something added at the limits of the implementation: groups nested
    past the recursion limit, or an integer literal of over 4,300 digits."""
    if draw(st.booleans()):
        depth = draw(st.integers(1000, 1500))
        chain = "group deep0 = { gmp }\n" + "".join(f"group deep{i} = {{ deep{i - 1} }}\n" for i in range(1, depth))
        return text + "\n" + chain
    digits = draw(st.integers(4301, 6000))
    return text + f"\nattributes {{\n  context.huge number default {'7' * digits}\n}}\n"


@functools.cache
def example_sources() -> tuple[Source, ...]:
    return tuple(loader.read_sources(None)) + (Source("policies/95_extra.policy", EXTRA_SEED),)


@functools.cache
def parsed_examples() -> tuple[ast.PolicyFile, ...]:
    return tuple(parse(source) for source in example_sources())


@st.composite
def token_mutation(draw, text: str) -> str:
    tokens = TOKEN.findall(text)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(tokens) - 1)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap"]))
        if op == "delete" and tokens:
            del tokens[i]
        elif op == "insert":
            tokens.insert(i, draw(st.sampled_from(PIECES)))
        elif op == "replace" and tokens:
            tokens[i] = draw(st.sampled_from(PIECES + tokens))
        elif op == "duplicate" and tokens:
            tokens.insert(i, tokens[i])
        elif op == "swap" and len(tokens) > 1:
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
    return "".join(tokens)


@st.composite
def char_mutation(draw, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(chars)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        char = draw(st.one_of(st.sampled_from(list('{}()",#\n.<=>!:- _')), st.characters()))
        if op == "delete" and i < len(chars):
            del chars[i]
        elif op == "insert":
            chars.insert(i, char)
        elif i < len(chars):
            chars[i] = char
    return "".join(chars)


@st.composite
def mutated_set(draw) -> tuple[int, str]:
    """One file of the example set mutated; the index of the file and its new text."""
    index = draw(st.integers(0, len(example_sources()) - 1))
    text = example_sources()[index].text
    mutation = draw(st.sampled_from([token_mutation, char_mutation, extreme_addition]))
    return index, draw(mutation(text))


def check_with(index: int, text: str) -> list[Diagnostic]:
    """Parse only the changed file; the rest of the set is parsed once."""
    source = Source(example_sources()[index].path, text)
    files = list(parsed_examples())
    found: list[Diagnostic] = []
    try:
        files[index] = parse(source)
    except PolicyError as exc:
        found.append(exc.to_diagnostic())
        del files[index]
    except RecursionError:
        del files[index]
    _vocab, diagnostics = checker.check(ast.PolicySet(tuple(files)))
    return found + diagnostics


def assert_only_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        assert isinstance(diagnostic, Diagnostic)
        assert diagnostic.code and diagnostic.message
        diagnostic.render()
        diagnostic.to_json()
        if diagnostic.span is not None:
            assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1


# Rule analysis (engine/analysis.py) is far slower than the checks, so most
# examples exercise the checker's own passes and a smaller batch the whole of check().
OWN_PASSES = [(name, run) for name, run in checker.PASSES if name != "analysis"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_set())
def test_mutated_policies_give_only_diagnostics(change):
    index, text = change
    with mock.patch.object(checker, "PASSES", OWN_PASSES):
        assert_only_diagnostics(check_with(index, text))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_set())
def test_mutated_policies_give_only_diagnostics_with_analysis(change):
    index, text = change
    assert_only_diagnostics(check_with(index, text))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_only_diagnostics(text):
    with mock.patch.object(checker, "PASSES", OWN_PASSES):
        assert_only_diagnostics(check_with(0, text))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60).map(" ".join))
def test_token_soup_gives_only_diagnostics(text):
    with mock.patch.object(checker, "PASSES", OWN_PASSES):
        assert_only_diagnostics(check_with(len(example_sources()) - 1, text))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_set())
def test_engine_check_never_raises(change):
    index, text = change
    with tempfile.TemporaryDirectory() as tmp:
        for i, source in enumerate(example_sources()):
            name = Path(source.path).name
            (Path(tmp) / name).write_text(text if i == index else source.text, encoding="utf-8", errors="replace")
        assert run_check(tmp, "json") in (0, 1)
