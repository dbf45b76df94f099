import json
import shutil
from pathlib import Path

import pytest

from engine.commands.main import main

EXAMPLES = Path(__file__).resolve().parent.parent / "policies"


@pytest.fixture
def local_copy(tmp_path, monkeypatch):
    """A working folder holding its own, retitled copy of the example policies."""
    shutil.copytree(EXAMPLES, tmp_path / "policies")
    vocabulary = tmp_path / "policies" / "00_vocabulary.policy"
    text = vocabulary.read_text().replace("(example)", "(local draft)")
    vocabulary.write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["matrix"], "(local draft)"),
        (["doc"], "(local draft)"),
    ],
    ids=["matrix", "doc"],
)
def test_commands_without_a_path_use_the_policies_folder_here(local_copy, capsys, argv, expected):
    assert main(argv) == 0
    assert expected in capsys.readouterr().out


def test_matrix_words_context_values_as_the_language_does(capsys):
    assert main(["matrix", str(EXAMPLES), "--context", "risk_of_harm=true"]) == 0
    out = capsys.readouterr().out
    assert "context.risk_of_harm=true" in out


# --- which policy set a command uses: one rule for every command --------------------

REQUEST = ('{"requester": {"role": "social_worker", "agency": "manchester_cs"}, "action": "share",'
           ' "resource": {"category": "health", "classification": "official_sensitive", "owner": "ardwick_gp"},'
           ' "purpose": "safeguarding.children.child_protection", "context": {"date": "2025-06-01",'
           ' "risk_of_harm": true}}')

WITHOUT_A_SET = [
    (["check"], "`engine check PATH`", "`engine check --example`"),
    (["test"], "`engine test PATH`", "`engine test --example`"),
    (["decide", "request.json"], "`engine decide --policy PATH REQUEST`", "`engine decide --example REQUEST`"),
    (["matrix"], "`engine matrix PATH`", "`engine matrix --example`"),
    (["doc"], "`engine doc PATH`", "`engine doc --example`"),
    (["fmt"], "`engine fmt PATH`", None),
]


@pytest.mark.parametrize(("argv", "naming", "example"), WITHOUT_A_SET, ids=[a[0] for a, _, _ in WITHOUT_A_SET])
def test_without_a_path_or_policies_here_a_command_stops_and_says_how_to_name_one(
        tmp_path, monkeypatch, capsys, argv, naming, example):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "request.json").write_text(REQUEST)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"engine {argv[0]}: there is no `policies/` directory here and no policy set was named" in err
    assert naming in err
    if example:
        assert example in err
    else:
        assert "--example" not in err  # fmt would rewrite the installed example files


WITH_THE_EXAMPLE = [["check", "--example"], ["test", "--example"], ["decide", "--example", "request.json"],
                    ["matrix", "--example"], ["doc", "--example"]]


@pytest.mark.parametrize("argv", WITH_THE_EXAMPLE, ids=[a[0] for a in WITH_THE_EXAMPLE])
def test_every_command_names_the_set_it_used_first_on_standard_error(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "request.json").write_text(REQUEST)
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err.startswith(f"engine {argv[0]}: using the built-in example policy set (sha256:")
    assert "sha256:" not in out.splitlines()[-1]  # never after the closing line


@pytest.mark.parametrize("argv", [["check"], ["test"], ["decide", "request.json"], ["matrix"], ["doc"], ["fmt", "--check"]])
def test_policies_here_is_used_and_named(local_copy, capsys, argv):
    (local_copy / "request.json").write_text(REQUEST)
    main(argv)
    _, err = capsys.readouterr()
    assert err.startswith(f"engine {argv[0]}: using policies (sha256:")


def test_a_path_and_example_together_are_refused(capsys):
    assert main(["check", str(EXAMPLES), "--example"]) == 2
    assert "give a policy set PATH or --example, not both" in capsys.readouterr().err


def test_json_output_stays_json(local_copy, capsys):
    assert main(["check", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["errors"] == 0
    assert err.startswith("engine check: using policies (")


@pytest.mark.parametrize(("argv", "message"), [
    (["--context", "consnt=given"], "--context consnt: no such attribute (did you mean `context.consent`?)"),
    (["--context", "agency=gp_practices"], ("--context requester.agency=gp_practices: `gp_practices` is a group; "
                                           "name one agency (ardwick_gp, levenshulme_gp)")),
], ids=["misspelt key", "group for an agency"])
def test_context_mistakes_say_what_to_write(capsys, argv, message):
    assert main(["matrix", str(EXAMPLES), *argv]) == 2
    assert f"error: {message}" in capsys.readouterr().err


def test_serving_a_bundle_looks_for_no_policies_folder(local_copy, monkeypatch):
    from engine.commands import policy_set
    from engine.commands.main import _parser

    args = _parser().parse_args(["serve", "--bundle", "https://bundles.example/policy.tar.gz"])
    policy_set.resolve(args)
    assert args.path is None
    monkeypatch.setenv("ENGINE_BUNDLE_URL", "https://bundles.example/policy.tar.gz")
    args = _parser().parse_args(["serve"])
    policy_set.resolve(args)
    assert args.path is None


# `engine serve` settings read from ENGINE_* variables when no flag is given; a flag still wins.
SERVE_ENVIRONMENT = [
    pytest.param({}, [], {"no_watch": False, "log_level": "info", "path": None}, id="defaults"),
    pytest.param({"ENGINE_WATCH": "0"}, [], {"no_watch": True}, id="watch-off"),
    pytest.param({"ENGINE_WATCH": "1"}, ["--no-watch"], {"no_watch": True}, id="flag-over-variable"),
    pytest.param({"ENGINE_LOG_LEVEL": "WARNING"}, [], {"log_level": "warning"}, id="log-level"),
    pytest.param({"ENGINE_LOG_LEVEL": "warning"}, ["--log-level", "debug"], {"log_level": "debug"}, id="log-flag"),
    pytest.param({"ENGINE_POLICY_PATH": "/srv/policies"}, [], {"path": "/srv/policies"}, id="policy-path"),
    pytest.param({"ENGINE_POLICY_PATH": "/srv/policies"}, ["here"], {"path": "here"}, id="path-argument-wins"),
]


@pytest.mark.parametrize(("environment", "argv", "expected"), SERVE_ENVIRONMENT)
def test_serve_takes_its_settings_from_the_environment(monkeypatch, environment, argv, expected):
    from engine.commands.main import _parser

    for name in ("ENGINE_WATCH", "ENGINE_LOG_LEVEL", "ENGINE_POLICY_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    args = _parser().parse_args(["serve", *argv])
    assert {key: getattr(args, key) for key in expected} == expected


def test_serve_refuses_an_unknown_log_level_by_its_variable(monkeypatch, capsys):
    monkeypatch.setenv("ENGINE_LOG_LEVEL", "loud")
    assert main(["serve", "--no-watch"]) == 2
    assert "ENGINE_LOG_LEVEL must be one of critical, error, warning, info, debug, not 'loud'" in capsys.readouterr().err
