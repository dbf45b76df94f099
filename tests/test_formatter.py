import collections
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.commands.main import main
from engine.errors import PolicySyntaxError
from engine.governance.formatter import expr_text, format_text
from engine.source import Source
from engine.syntax import parse

HERE = Path(__file__).parent
PAIRS = sorted((HERE / "fixtures" / "fmt").glob("*.policy"))
EXAMPLES = sorted((HERE.parent / "policies").glob("*.policy")) + sorted((HERE / "fixtures").glob("*/*/*.policy"))


def parsed(text):
    return parse(Source("x.policy", text))


def comment_texts(text):
    return collections.Counter(c.text.rstrip() for c in parsed(text).comments)


def assert_formats_faithfully(text):
    formatted = format_text(text)
    assert parsed(formatted) == parsed(text)
    assert comment_texts(formatted) == comment_texts(text)
    assert format_text(formatted) == formatted
    return formatted


# --- golden pairs -------------------------------------------------------------------


def test_there_are_golden_pairs():
    assert len(PAIRS) >= 6
    assert all(p.with_name(p.name + ".formatted").is_file() for p in PAIRS)


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.stem)
def test_golden_pair(path):
    expected = path.with_name(path.name + ".formatted").read_text(encoding="utf-8")
    assert format_text(path.read_text(encoding="utf-8"), str(path)) == expected


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.stem)
def test_golden_output_is_already_formatted(path):
    expected = path.with_name(path.name + ".formatted").read_text(encoding="utf-8")
    assert format_text(expected) == expected


@pytest.mark.parametrize("path", PAIRS + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_formatting_keeps_meaning_and_every_comment(path):
    text = path.read_text(encoding="utf-8")
    try:
        parsed(text)
    except PolicySyntaxError:
        pytest.skip("not a parseable policy")
    assert_formats_faithfully(text)


# --- layout rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("a and b or c", "a and b or c"),
        ("a and (b or c)", "a and (b or c)"),
        ("(a and b) and c", "(a and b) and c"),
        ("((a))", "a"),
        ("not (a == b)", "not a == b"),
        ("(not a) == b", "(not a) == b"),
        ("not (a or b)", "not (a or b)"),
        ("not not a", "not not a"),
        ("x in {a,b}", "x in {a, b}"),
        ("x in g and has y", "x in g and has y"),
        ("r is gp", "r is gp"),
        ('s == "say \\"hi\\" \\\\"', 's == "say \\"hi\\" \\\\"'),
        ("n > 1.50 and d < 2025-01-31", "n > 1.50 and d < 2025-01-31"),
    ],
    ids=["precedence", "or-in-and", "nested-and-kept", "redundant", "not-binds-looser",
         "not-as-operand", "not-group", "double-not", "set", "group-has", "is", "escapes", "as-written"],
)
def test_expression_parentheses(src, expected):
    rule = parsed(f"permit r {{\n  when {src}\n}}\n").declarations[0]
    assert expr_text(rule.clauses[0].expr) == expected


def test_long_condition_breaks_before_its_operators():
    # The docs' advice: a continuation line starts with `and`/`or`, which always continues the
    # line before, so a clause keyword such as `action` never starts a line.
    text = "permit r {\n  when " + " or ".join(["context.some_long_flag"] * 3 + ["action == share"]) + "\n}\n"
    formatted = assert_formats_faithfully(text)
    assert formatted.splitlines()[1:5] == ["  when        context.some_long_flag",
                                           "              or context.some_long_flag",
                                           "              or context.some_long_flag",
                                           "              or action == share"]


@pytest.mark.parametrize(("text", "formatted"), [
    ("permit r {\n  role gp,\n       nurse\n}\n", "permit r {\n  role        gp,\n              nurse\n}\n"),
    ("roles {\n  gp\n  nurse\n}\n", "roles {\n  gp\n  nurse\n}\n"),
    ("group g = {\n  a,\n  b\n}\n", "group g = {\n  a,\n  b\n}\n"),
    ("permit r {\n  when context.a\n    and context.b\n}\n",
     "permit r {\n  when        context.a\n              and context.b\n}\n"),
    ("permit r {\n  role gp, nurse,\n       doctor\n}\n", "permit r {\n  role        gp, nurse, doctor\n}\n"),
], ids=["clause list", "vocabulary", "group", "condition", "not one a line: packed"])
def test_a_list_written_one_item_a_line_stays_so(text, formatted):
    assert assert_formats_faithfully(text) == formatted


def test_trailing_comments_on_joined_lines_are_all_kept():
    text = "group g = { a,  # first\n  b, c }  # second\n"
    formatted = assert_formats_faithfully(text)
    assert formatted == "# first\ngroup g = { a, b, c }  # second\n"


def test_comment_only_file():
    assert assert_formats_faithfully("  # just a note   \n\n\n# and another\n") == "# just a note\n\n# and another\n"


def test_empty_file():
    assert format_text("") == ""


def test_crlf_input_becomes_lf():
    formatted = assert_formats_faithfully("actions { view }\r\n# note\r\n")
    assert formatted == "actions { view }\n\n# note\n"


# --- generated policies ---------------------------------------------------------------

SOFT, HARD = object(), object()  # may break the line here / must
NAMES = st.sampled_from(["a", "b2", "gp", "social_worker", "partners", "k_9", "x"])
REFS = st.one_of(NAMES, st.sampled_from(["safeguarding.children", "a.b.c"]))
PATHS = st.sampled_from(["context.a", "context.risk_of_harm", "requester.role", "resource.owner", "action", "purpose"])
TEXT = st.text(alphabet='ab "\\#{}', max_size=8)
COMMENT = st.text(alphabet="ab #\"{}", max_size=10)


def lit(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def values(draw):
    return [draw(st.one_of(
        PATHS, NAMES, TEXT.map(lit), st.sampled_from(["0", "-2", "1.50", "2025-06-01", "true", "false"])
    ))]


def listed(draw, items, min_size=1, trailing=False):
    chosen = draw(st.lists(items, min_size=min_size, max_size=4))
    out = []
    for i, item in enumerate(chosen):
        out += (["," , SOFT] if i else []) + item
    if trailing and chosen and draw(st.booleans()):
        out.append(",")
    return out


@st.composite
def exprs(draw, depth=3):
    strength = {"or": 1, "and": 2, "not": 3}
    kind = draw(st.sampled_from(["cmp", "in", "is", "has", "value"] + (["or", "and", "not"] if depth else [])))
    if kind in ("or", "and"):
        parts = draw(st.lists(exprs(depth - 1), min_size=2, max_size=3))
        out = []
        for i, (tokens, s) in enumerate(parts):
            out += ([SOFT, kind, SOFT] if i else []) + wrap(draw, tokens, s, strength[kind] + 1)
        return out, strength[kind]
    if kind == "not":
        tokens, s = draw(exprs(depth - 1))
        return ["not", SOFT] + wrap(draw, tokens, s, 3), 3
    if kind == "cmp":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return draw(values()) + [op, SOFT] + draw(values()), 4
    if kind == "in":
        if draw(st.booleans()):
            return draw(values()) + ["in", SOFT, draw(NAMES)], 4
        return draw(values()) + ["in", "{", SOFT] + listed(draw, values(), 0, True) + [SOFT, "}"], 4
    if kind == "is":
        return draw(values()) + ["is", SOFT, draw(REFS)], 4
    if kind == "has":
        return ["has", draw(PATHS)], 4
    return draw(values()), 5


def wrap(draw, tokens, strength, needs):
    if strength < needs or draw(st.integers(0, 4)) == 0:
        return ["(", SOFT] + tokens + [SOFT, ")"]
    return tokens


def condition(draw):
    tokens, _ = draw(exprs())
    return [draw(st.sampled_from(["when", "unless"]))] + tokens


def obligation(draw):
    out = ["obligation", draw(NAMES)]
    if draw(st.booleans()):
        out += listed(draw, values())
    if draw(st.booleans()):
        out += condition(draw)
    return out


@st.composite
def clauses(draw):
    kind = draw(st.sampled_from(["match", "data", "any", "cond", "obligation", "because"]))
    if kind == "match":
        word = draw(st.sampled_from(["action", "role", "agency", "purpose", "owner", "under"]))
        return [word] + listed(draw, REFS.map(lambda r: [r]))
    if kind == "data":
        upto = ["up", "to", draw(NAMES)] if draw(st.booleans()) else []
        return ["data"] + listed(draw, REFS.map(lambda r: [r])) + upto
    if kind == "any":
        return ["data", "any", "up", "to", draw(NAMES)]
    if kind == "cond":
        return condition(draw)
    if kind == "obligation":
        return obligation(draw)
    return ["because", lit(draw(TEXT))]


def block(draw, head, items, sep):
    out = head + ["{", SOFT]
    for i, item in enumerate(items):
        out += (draw(st.sampled_from(sep)) if i else []) + item
    return out + [SOFT, "}"]


@st.composite
def tree_nodes(draw, depth=2):
    out = [draw(NAMES)] + ([lit(draw(TEXT))] if draw(st.integers(0, 3)) == 0 else [])
    if depth and draw(st.booleans()):
        kids = draw(st.lists(tree_nodes(depth - 1), max_size=3))
        out = block(draw, out, kids, [[",", SOFT], [HARD]])
    return out


@st.composite
def declarations(draw):
    kind = draw(st.sampled_from(
        ["header", "actions", "roles", "tree", "classes", "group", "attributes", "agreement", "rule", "on"]
    ))
    sep = [[",", SOFT], [HARD]]
    labelled = st.tuples(NAMES, st.one_of(st.just([]), TEXT.map(lambda t: [lit(t)]))).map(lambda p: [p[0]] + p[1])
    if kind == "header":
        fields = {"version": [lit("1")], "owner": [lit(draw(TEXT))], "combine": [draw(st.sampled_from(
            ["deny-overrides", "permit-overrides", "first-applicable"]))]}
        keys = draw(st.permutations(list(fields)))[: draw(st.integers(0, 3))]
        return block(draw, ["policy", lit(draw(TEXT))], [[k] + fields[k] for k in keys], [[HARD]])
    if kind == "actions":
        items = draw(st.lists(labelled, max_size=5))
        return block(draw, [draw(st.sampled_from(["actions", "agencies"]))], items, sep)
    if kind == "roles":
        roles = st.tuples(labelled, st.lists(REFS, max_size=2)).map(
            lambda p: p[0] + ([":"] + ", ".join(p[1]).split(" ") if p[1] else []))
        return block(draw, ["roles"], draw(st.lists(roles, max_size=5)), [[HARD]])
    if kind == "tree":
        nodes = draw(st.lists(tree_nodes(), max_size=4))
        return block(draw, [draw(st.sampled_from(["purposes", "categories"]))], nodes, sep)
    if kind == "classes":
        levels = draw(st.lists(labelled, min_size=1, max_size=4))
        out = ["classifications"]
        for i, level in enumerate(levels):
            out += (["<", SOFT] if i else []) + level
        return out
    if kind == "group":
        return ["group", draw(NAMES), "=", "{", SOFT] + listed(draw, NAMES.map(lambda n: [n]), 0, True) + [SOFT, "}"]
    if kind == "attributes":
        types = st.one_of(
            st.sampled_from(["bool", "number", "string", "date", "role", "classification"]).map(lambda t: [t]),
            st.lists(labelled, max_size=3).map(lambda vs: ["one", "of", "{"] + [t for v in vs for t in v + [","]] + ["}"]),
        )
        item = st.tuples(PATHS.filter(lambda p: "." in p), types, st.one_of(st.just([]), values())).map(
            lambda p: [p[0]] + p[1] + (["default"] + p[2] if p[2] else []))
        return block(draw, ["attributes"], draw(st.lists(item, max_size=4)), [[HARD]])
    if kind == "agreement":
        fields = {
            "parties": listed(draw, NAMES.map(lambda n: [n])),
            "from": listed(draw, NAMES.map(lambda n: [n])),
            "to": listed(draw, NAMES.map(lambda n: [n])),
            "valid": ["2024-04-01", "to", "2027-03-31"],
            "reference": [lit(draw(TEXT))],
        }
        keys = draw(st.permutations(list(fields)))[: draw(st.integers(0, 5))]
        head = ["agreement", draw(NAMES)] + ([lit(draw(TEXT))] if draw(st.booleans()) else [])
        return block(draw, head, [[k] + fields[k] for k in keys], [[HARD]])
    if kind == "rule":
        head = [draw(st.sampled_from(["permit", "deny"])), draw(NAMES)]
        head += [lit(draw(TEXT))] if draw(st.booleans()) else []
        return block(draw, head, draw(st.lists(clauses(), max_size=5)), [[HARD]])
    return ["on", draw(st.sampled_from(["permit", "deny", "any"]))] + obligation(draw)


@st.composite
def policy_texts(draw):
    tokens = []
    for i, decl in enumerate(draw(st.lists(declarations(), max_size=6))):
        tokens += ([HARD] if i else []) + decl
    out = []

    def newline():
        if draw(st.integers(0, 3)) == 0:
            out.append("  #" + draw(COMMENT))
        out.append("\n" * draw(st.integers(1, 2)))
        for _ in range(draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else 0):
            out.append(" " * draw(st.integers(0, 4)) + "#" + draw(COMMENT) + "\n")
        out.append(draw(st.sampled_from(["", "  ", "    ", "\t"])))

    if draw(st.booleans()):
        out.append("#" + draw(COMMENT) + "\n")
    for i, token in enumerate(tokens):
        following = next((t for t in tokens[i + 1 :] if isinstance(t, str)), None)
        if token is HARD:
            newline()
        elif token is SOFT:
            # A clause keyword at the start of a line would begin a new clause.
            if following not in ("action", "purpose") and draw(st.integers(0, 3)) == 0:
                newline()
        else:
            out.append(token + " " * draw(st.integers(1, 2)))
    if draw(st.booleans()):
        out.append("\n# " + draw(COMMENT))
    return "".join(out)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts())
def test_generated_policies_format_faithfully(text):
    assert_formats_faithfully(text)


# --- engine fmt -----------------------------------------------------------------------

MESSY = "actions {view,share}\npermit r { action view\n because \"b\" }  # kept\n"
TIDY = format_text(MESSY)
BROKEN = "actions { view }\npermit r {\n  role nurse surgeon\n}\n"


@pytest.fixture
def policy_dir(tmp_path):
    (tmp_path / "a.policy").write_text(MESSY, encoding="utf-8")
    (tmp_path / "b.policy").write_text(TIDY, encoding="utf-8")
    return tmp_path


def test_fmt_rewrites_changed_files_in_place(policy_dir, capsys):
    assert main(["fmt", str(policy_dir)]) == 0
    assert (policy_dir / "a.policy").read_text(encoding="utf-8") == TIDY
    out = capsys.readouterr()
    assert out.out == f"reformatted {policy_dir / 'a.policy'}\n"
    assert "1 file reformatted, 1 file left unchanged" in out.err
    assert sorted(p.name for p in policy_dir.iterdir()) == ["a.policy", "b.policy"]


def test_fmt_keeps_the_file_mode(policy_dir):
    os.chmod(policy_dir / "a.policy", 0o640)
    main(["fmt", str(policy_dir / "a.policy")])
    assert (policy_dir / "a.policy").stat().st_mode & 0o777 == 0o640


def test_fmt_defaults_to_policies_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.policy").write_text(MESSY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["fmt"]) == 0
    assert (tmp_path / "policies" / "a.policy").read_text(encoding="utf-8") == TIDY


def test_fmt_check_lists_files_and_writes_nothing(policy_dir, capsys):
    assert main(["fmt", "--check", str(policy_dir)]) == 1
    assert capsys.readouterr().out == f"would reformat {policy_dir / 'a.policy'}\n"
    assert (policy_dir / "a.policy").read_text(encoding="utf-8") == MESSY


def test_fmt_check_passes_on_formatted_files(policy_dir):
    assert main(["fmt", "--check", str(policy_dir / "b.policy")]) == 0


def test_fmt_diff_prints_a_unified_diff_and_writes_nothing(policy_dir, capsys):
    assert main(["fmt", "--diff", str(policy_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {policy_dir / 'a.policy'}\n+++ {policy_dir / 'a.policy'}\n")
    assert "-actions {view,share}\n" in out and "+actions { view, share }\n" in out
    assert "b.policy" not in out
    assert (policy_dir / "a.policy").read_text(encoding="utf-8") == MESSY


def test_fmt_diff_with_check_fails_when_there_are_differences(policy_dir, capsys):
    assert main(["fmt", "--diff", "--check", str(policy_dir)]) == 1
    assert "+actions { view, share }" in capsys.readouterr().out


def test_fmt_reports_a_syntax_error_and_leaves_the_file_untouched(policy_dir, capsys):
    (policy_dir / "c.policy").write_text(BROKEN, encoding="utf-8")
    assert main(["fmt", str(policy_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{policy_dir / 'c.policy'}:3:14: error: unexpected `surgeon`" in err
    assert "      role nurse surgeon\n                 ^^^^^^^\n" in err
    assert (policy_dir / "c.policy").read_text(encoding="utf-8") == BROKEN
    assert (policy_dir / "a.policy").read_text(encoding="utf-8") == TIDY


def test_fmt_check_with_a_syntax_error_exits_2(policy_dir):
    (policy_dir / "c.policy").write_text(BROKEN, encoding="utf-8")
    assert main(["fmt", "--check", str(policy_dir)]) == 2


def test_fmt_missing_path_exits_2(tmp_path, capsys):
    assert main(["fmt", str(tmp_path / "nowhere")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
