"""Syntax errors that point at the fix: each broken input gives the place, the caret and the help.

A table of broken policy text, in the manner of Lark's `match_examples`: the
mistakes authors make most, with the error each must produce, rendered as
`engine check` prints it.
"""

from __future__ import annotations

import pytest

from engine.commands.main import main
from engine.pipeline import run as run_pipeline

# (id, policy text, the rendered error: file:line:col, message, source line, caret, help)
BROKEN = [
    ("missing comma at the end of a list line",
     "permit r {\n  role gp\n  data health, social_care\n     diagnosis\n}\n",
     ("a.policy:3:27: error: line 4 goes on with `diagnosis`, but line 3 does not end with `,`\n"
     "      data health, social_care\n"
     "                              ^\n"
     "help: add `,` at the end of line 3 to continue the list")),
    ("missing comma in a vocabulary list",
     "roles {\n  gp, nurse\n  doctor\n}\n",
     None),  # a list in braces may go on by line: no error
    ("a line ending in `and` followed by a clause",
     "permit r {\n  when context.a and\n  unless context.b\n}\n",
     ("a.policy:2:18: error: line 2 ends with `and`, so the condition goes on to the next line, "
     "but line 3 starts a new clause with `unless`\n"
     "      when context.a and\n"
     "                     ^^^\n"
     "help: finish the condition after `and` on line 2, or remove the `and`")),
    ("a line starting with `and` after a clause that is not a condition",
     "permit r {\n  role gp\n  and role nurse\n}\n",
     ("a.policy:3:3: error: line 3 starts with `and`, so it continues line 2, but line 2 is a `role` clause\n"
     "      and role nurse\n"
     "      ^^^\n"
     "help: `and` and `or` join the conditions of `when` and `unless`; each other clause stands on its own "
     "line: remove `and`, or list both values in one clause: `role a, b`")),
    ("a `{` left open in the middle of a file",
     "roles { gp, nurse\n\npermit r {\n  role gp\n}\n\npermit s {\n  role nurse\n}\n",
     ("a.policy:1:7: error: the `{` on line 1 is never closed\n"
     "    roles { gp, nurse\n"
     "          ^\n"
     "help: add `}` to close it before `permit` on line 3")),
    ("curly double quotes",
     "permit r {\n  because \u201cChildren Act\u201d\n}\n",
     ("a.policy:2:11: error: unexpected character `\u201c`: a curly quote\n"
     "      because \u201cChildren Act\u201d\n"
     "              ^\n"
     'help: use straight double quotes: "like this" (text copied from Word, Excel or a web page often '
     "brings these in)")),
    ("an en dash between the dates of `valid`",
     "agreement a {\n  valid 2025-04-01 \u2013 2028-03-31\n}\n",
     ("a.policy:2:20: error: unexpected `\u2013` between the dates\n"
     "      valid 2025-04-01 \u2013 2028-03-31\n"
     "                       ^\n"
     "help: write `to` between the dates: `valid 2025-04-01 to 2028-03-31`")),
    ("a hyphen between the dates of `valid`",
     "agreement a {\n  valid 2025-04-01 - 2028-03-31\n}\n",
     ("a.policy:2:20: error: unexpected `-` between the dates\n"
     "      valid 2025-04-01 - 2028-03-31\n"
     "                       ^\n"
     "help: write `to` between the dates: `valid 2025-04-01 to 2028-03-31`")),
    ("a non-breaking space",
     "permit r {\n  role\u00a0gp\n}\n",
     ("a.policy:2:7: error: unexpected character U+00A0: a non-breaking space\n"
     "      role\u00a0gp\n"
     "          ^\n"
     "help: replace it with an ordinary space (text copied from Word, Excel or a web page often brings "
     "these in)")),
    ("an impossible day of the month",
     "agreement a {\n  valid 2025-04-31 to 2028-03-31\n}\n",
     ("a.policy:2:9: error: `2025-04-31` is not a real date\n"
     "      valid 2025-04-31 to 2028-03-31\n"
     "            ^^^^^^^^^^\n"
     "help: April 2025 has 30 days")),
    ("29 February outside a leap year",
     "agreement a {\n  valid 2025-02-29 to 2028-03-31\n}\n",
     ("a.policy:2:9: error: `2025-02-29` is not a real date\n"
     "      valid 2025-02-29 to 2028-03-31\n"
     "            ^^^^^^^^^^\n"
     "help: February 2025 has 28 days")),
    ("month and day swapped",
     "agreement a {\n  valid 2025-31-03 to 2028-03-31\n}\n",
     ("a.policy:2:9: error: `2025-31-03` is not a real date\n"
     "      valid 2025-31-03 to 2028-03-31\n"
     "            ^^^^^^^^^^\n"
     "help: there is no month 31: dates are written year-month-day, like 2025-06-01")),
]


@pytest.mark.parametrize(("text", "rendered"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_syntax_mistake_is_reported_where_it_can_be_fixed(tmp_path, monkeypatch, text, rendered):
    (tmp_path / "a.policy").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    diagnostics = run_pipeline("a.policy").diagnostics
    syntax = [d for d in diagnostics if d.code == "policy_parse_error"]
    if rendered is None:
        assert syntax == []
    else:
        assert syntax and syntax[0].render() == rendered


def test_a_byte_order_mark_at_the_start_of_a_file_is_accepted_silently(tmp_path, monkeypatch):
    (tmp_path / "a.policy").write_bytes("\ufeffactions { view }\n".encode())
    monkeypatch.chdir(tmp_path)
    diagnostics = run_pipeline("a.policy").diagnostics
    assert diagnostics == []


# --- YAML mistakes in a *.test.yaml file --------------------------------------------------

# (id, test file text, the error as `engine test` prints it: place, line, caret, help)
BROKEN_YAML = [
    ("a tab in the indentation", "cases:\n  - name: a\n\trequest: {}\n",
     ["ERROR t.test.yaml:3:1: not valid YAML: a tab in the indentation",
      "     request: {}",
      "    ^",
      "  help: YAML indents with spaces, not tabs: replace the tab on line 3 with spaces"]),
    ("an unclosed flow mapping, at its own line", ("cases:\n  - name: a\n    request: {requester: {role: nurse}\n"
     "    expect: permit\n"),
     ["ERROR t.test.yaml:3:14: not valid YAML: the `{` here is never closed",
      "        request: {requester: {role: nurse}",
      "                 ^",
      "  help: add `}` to close it, on line 3"]),
    ("an unclosed quote", 'cases:\n  - name: "abc\n    expect: permit\n',
     ["ERROR t.test.yaml:2:11: not valid YAML: the `\"` here is never closed",
      '      - name: "abc',
      "              ^",
      "  help: add `\"` to close it, on line 2"]),
    ("a key indented less than the others", "cases:\n  - name: a\n    request: {}\n   expect: permit\n",
     ["ERROR t.test.yaml:4:4: not valid YAML: this line is indented differently from the lines above it",
      "       expect: permit",
      "       ^",
      "  help: the keys of a case (`name`, `request`, `expect`) line up under each other, indented with spaces"]),
    ("a colon inside unquoted text", "cases:\n  - name: nurse: night shift\n",
     ["ERROR t.test.yaml:2:16: not valid YAML: mapping values are not allowed in this context",
      "      - name: nurse: night shift",
      "                   ^",
      ('  help: put text that contains `: ` in quotes, as in `name: "nurse: night shift"`, or indent line 2 '
      "like the lines above it")]),
]


@pytest.mark.parametrize(("text", "shown"), [c[1:] for c in BROKEN_YAML], ids=[c[0] for c in BROKEN_YAML])
def test_a_yaml_mistake_is_shown_at_its_line_with_a_caret_and_help(tmp_path, monkeypatch, capsys, text, shown):
    (tmp_path / "a.policy").write_text("actions { view }\n", encoding="utf-8")
    (tmp_path / "t.test.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["test", "t.test.yaml"]) == 2
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ERROR"))
    assert lines[start:start + 4] == shown
