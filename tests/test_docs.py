"""The examples in README.md and docs/*.md work against the example policy set.

Every fenced block marked `policy`, `json`, `yaml` or `sh` is run:

- `policy`: checked together with the example set; no error but a repeated
  declaration (a block may quote a declaration of the example itself);
- `json`: parsed; a request (it has `requester`) is decided, and must be valid;
- `yaml`: parsed; a policy test file (it has `cases`) runs against the example
  set, and every case must pass;
- `sh`: each line that starts with `engine` runs (in a folder holding a copy
  of the example set as `policies/`) and must exit 0; `> FILE` is allowed;
  other lines and `# comments` are ignored.

A block that cannot run here (it needs a running service, a database, files
the reader makes, another version of the set) is marked on the line just
before its fence, with the reason:

    <!-- skip: needs the service started by the command above -->

A mark without a reason fails. Blocks with no language (output, fragments of
rules) are not run.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import engine
from engine.commands.main import main
from engine.pipeline import run as run_pipeline

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "policies"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("policy", "json", "yaml", "sh")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[A-Za-z]*)\s*$")
_SKIP = re.compile(r"^\s*<!--\s*skip:(?P<reason>.*?)-->\s*$")
_REPEATS = {"duplicate_name", "duplicate_rule", "second_header", "second_classifications"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    language: str
    text: str
    skip: str | None  # the reason, when marked skipped

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the skip mark before each, if any."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent = len(fence["indent"])
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        body = "\n".join(line[indent:] for line in lines[i + 1:end]) + "\n"
        mark = _SKIP.match(lines[i - 1]) if i else None
        found.append(Block(path, i + 1, fence["language"], body, mark["reason"].strip() if mark else None))
        i = end + 1
    return found


ALL = [block for path in DOCUMENTS for block in blocks(path)]
RUN = [block for block in ALL if block.language in LANGUAGES and block.skip is None]


def test_the_documents_have_runnable_examples():
    assert {block.language for block in RUN} >= {"json", "yaml", "sh"}


def test_every_skip_mark_gives_its_reason():
    marked = [block for block in ALL if block.skip is not None]
    assert marked and all(block.skip for block in marked), [b.id for b in marked if not b.skip]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder holding a copy of the example set as `policies/`, made the working directory."""
    shutil.copytree(EXAMPLES, tmp_path / "policies", ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def example():
    return engine.load(EXAMPLES)


@pytest.mark.parametrize("block", RUN, ids=[block.id for block in RUN])
def test_the_example_works(block, workspace, example, capsys):
    {"policy": _policy, "json": _json, "yaml": _yaml, "sh": _sh}[block.language](block, workspace, example, capsys)


def _policy(block: Block, workspace: Path, example, capsys) -> None:
    (workspace / "policies" / "zz_from_the_docs.policy").write_text(block.text, encoding="utf-8")
    diagnostics = run_pipeline(workspace / "policies").diagnostics
    errors = [d.render() for d in diagnostics if d.is_error and d.code not in _REPEATS]
    assert errors == [], block.id


def _json(block: Block, workspace: Path, example, capsys) -> None:
    value = json.loads(block.text)
    if isinstance(value, dict) and "requester" in value:
        decision = example.decide(value)  # raises RequestError when the example is no longer valid
        assert decision.decision in ("permit", "deny")


def _yaml(block: Block, workspace: Path, example, capsys) -> None:
    value = yaml.safe_load(block.text)
    if isinstance(value, dict) and "cases" in value:
        (workspace / "policies" / "zz_from_the_docs.test.yaml").write_text(block.text, encoding="utf-8")
        status = main(["test", "policies/zz_from_the_docs.test.yaml"])
        out = capsys.readouterr().out
        assert status == 0, out


def _sh(block: Block, workspace: Path, example, capsys) -> None:
    ran = 0
    for line in block.text.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] != "engine":
            continue
        target = None
        if ">" in words:
            at = words.index(">")
            words, target = words[:at], words[at + 1]
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            status = main(words[1:])
        err = capsys.readouterr().err
        assert status == 0, f"{block.id}: `{line.strip()}` exited {status}\n{err}"
        if target:
            (workspace / target).write_text(buffer.getvalue(), encoding="utf-8")
        ran += 1
    assert ran, f"{block.id}: no `engine` command to run; mark the block skipped with a reason"
