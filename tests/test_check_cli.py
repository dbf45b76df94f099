import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import loader
from engine.commands.main import main

from conftest import SMALL_RULE, SMALL_VOCABULARY

ROOT = Path(__file__).resolve().parent.parent

VOCABULARY, GOOD_RULE = SMALL_VOCABULARY, SMALL_RULE


@pytest.fixture
def policy_dir(policy_files):
    return policy_files


def run(capsys, *argv):
    status = main(["check", *argv])
    out, err = capsys.readouterr()
    return status, out, without_used_set("check", err)


def without_used_set(command: str, err: str) -> str:
    """Standard error without the line naming the policy set used (every command prints it first)."""
    first, _, rest = err.partition("\n")
    return rest if first.startswith(f"engine {command}: using ") else err


def test_clean_set_exits_0_with_a_summary(policy_dir, capsys):
    root = policy_dir(a=VOCABULARY, b=GOOD_RULE)
    status, out, err = run(capsys, str(root))
    assert (status, out, err) == (0, f"{root}: ok (2 files, 1 rule)\n", "")


def test_warnings_alone_still_exit_0(policy_dir, capsys):
    root = policy_dir(a=VOCABULARY, b="permit r {\n  role gp\n}\n")
    status, out, _ = run(capsys, str(root))
    assert status == 0
    assert out.endswith(f"{root}: ok (2 files, 1 rule, 1 warning)\n")
    assert "\nb.policy:1:8: warning: rule `r` has no `because`" in "\n" + out  # relative to the root


def test_errors_exit_1_rendered_like_a_compiler(policy_dir, capsys, monkeypatch):
    policy_dir(a=VOCABULARY, b='permit r {\n  role socail_worker\n  because "x"\n}\n')
    monkeypatch.chdir(policy_dir().parent)
    status, out, _ = run(capsys, "policies")
    assert status == 1
    assert out == (
        "b.policy:2:8: error: unknown role `socail_worker`\n"
        "      role socail_worker\n"
        "           ^^^^^^^^^^^^^\n"
        "help: did you mean `social_worker`?\n"
        "\n"
        "1 error\n"
    )


def test_every_diagnostic_then_counts(policy_dir, capsys, monkeypatch):
    policy_dir(
        a=VOCABULARY,
        b="permit r {\n  role socail_worker\n}\npermit s {\n  role gpp\n  because \"x\"\n}\n",
    )
    monkeypatch.chdir(policy_dir().parent)
    status, out, _ = run(capsys, "policies")
    blocks = out.rstrip("\n").split("\n\n")
    assert status == 1
    assert [b.split("\n")[0] for b in blocks] == [
        "b.policy:1:8: warning: rule `r` has no `because`",
        "b.policy:2:8: error: unknown role `socail_worker`",
        "b.policy:5:8: error: unknown role `gpp`",
        "2 errors, 1 warning",
    ]


def test_syntax_errors_in_several_files_are_all_shown(policy_dir, capsys):
    root = policy_dir(a="roles { gp\n", b="permit r {\n  role 'gp'\n}\n", c=VOCABULARY)
    status, out, _ = run(capsys, str(root))
    assert status == 1
    assert "a.policy:1:11: error: unexpected end of file: a block is not closed" in out
    assert "b.policy:2:8: error: unexpected character `'`" in out
    assert out.endswith("2 errors\n")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such file or directory"),
        (lambda root: root, "no .policy files found"),
    ],
    ids=["missing path", "no policy files"],
)
def test_unreadable_path_exits_2_without_a_traceback(make, message, tmp_path, capsys):
    path = make(tmp_path)
    status, out, err = run(capsys, str(path))
    assert (status, out) == (2, "")
    assert err == f"error: {path}: {message}\n"


def test_file_that_is_not_utf8_exits_2(policy_dir, capsys):
    root = policy_dir(a=VOCABULARY)
    (root / "b.policy").write_bytes(b"roles { caf\xe9 }\n")
    status, _, err = run(capsys, str(root))
    assert status == 2
    assert err == "error: b.policy: not UTF-8 text (byte 11)\n"


def test_a_single_file_can_be_checked(policy_dir, capsys):
    root = policy_dir(a=VOCABULARY)
    status, out, _ = run(capsys, str(root / "a.policy"))
    assert (status, out) == (0, f"{root}/a.policy: ok (1 file, 0 rules)\n")


def test_json_format(policy_dir, capsys, monkeypatch):
    policy_dir(a=VOCABULARY, b="permit r {\n  role socail_worker\n}\n")
    monkeypatch.chdir(policy_dir().parent)
    status, out, _ = run(capsys, "policies", "--format", "json")
    report = json.loads(out)
    assert status == 1
    assert (report["errors"], report["warnings"]) == (1, 1)
    assert report["diagnostics"][1] == {
        "severity": "error",
        "code": "unknown_name",
        "message": "unknown role `socail_worker`",
        "location": {"file": "b.policy", "line": 2, "column": 8, "end_line": 2, "end_column": 21},
        "help": "did you mean `social_worker`?",
    }
    assert report["diagnostics"][0]["severity"] == "warning"


def test_json_format_clean(policy_dir, capsys):
    root = policy_dir(a=VOCABULARY, b=GOOD_RULE)
    status, out, _ = run(capsys, str(root), "--format", "json")
    assert (status, json.loads(out)) == (0, {"diagnostics": [], "errors": 0, "warnings": 0})


def test_json_format_unreadable(tmp_path, capsys):
    status, out, _ = run(capsys, str(tmp_path / "missing"), "--format", "json")
    report = json.loads(out)
    assert status == 2
    assert report["errors"] == 1
    assert report["diagnostics"][0]["code"] == "policy_load_error"


def test_default_path_is_policies_in_the_working_directory(policy_dir, capsys, monkeypatch):
    policy_dir(a=VOCABULARY)
    monkeypatch.chdir(policy_dir().parent)
    status, out, _ = run(capsys)
    assert (status, out) == (0, "policies: ok (1 file, 0 rules)\n")


def test_the_example_set_is_checked_only_when_asked_for(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example, _ = loader.load_set(None)
    status, out, _ = run(capsys, "--example")
    assert status == 0
    assert out == (f"the built-in example policy set: ok ({len(example.files)} files, "
                   f"{len(example.rules())} rules)\n")


def test_python_dash_m_shows_no_traceback(tmp_path):
    bad = tmp_path / "x.policy"
    bad.write_text("permit r {\n  when a &&& b\n}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "engine", "check", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{bad.name}:2:10: error: unexpected character `&`" in result.stdout
