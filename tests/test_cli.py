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
