"""Policy sets: read every *.policy file under a directory, in path order."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from engine import ast, parse_cache
from engine.errors import Diagnostic, PolicyError, PolicyLoadError, error
from engine.source import Source
from engine.syntax import parse


def default_policy_dir() -> Path:
    """The example policies: beside the source tree, or inside the installed package."""
    beside = Path(__file__).resolve().parent.parent / "policies"
    if any(beside.glob("*.policy")):
        return beside
    return Path(str(resources.files("engine.policies")))


def policy_paths(path: str | Path | None) -> tuple[Path, list[Path]]:
    """The root and the policy files it holds, in path order.

    Raises PolicyLoadError when the path does not exist or holds no policy.
    """
    root = Path(path) if path is not None else default_policy_dir()
    if root.is_file():
        return root, [root]
    if not root.is_dir():
        raise PolicyLoadError(f"{root}: no such file or directory")
    files = _unique(sorted(p for p in root.rglob("*.policy") if p.is_file() and not _hidden(p, root)))
    if not files:
        raise PolicyLoadError(f"{root}: no .policy files found")
    return root, files


def _hidden(file: Path, root: Path) -> bool:
    # A Kubernetes ConfigMap mount keeps the real files in `..<timestamp>/` behind
    # symlinks; editors and git keep theirs in dot-directories too. None is policy.
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def _unique(files: list[Path]) -> list[Path]:
    """Each file once, however many symlinks lead to it (the first path in order names it)."""
    seen: set[Path] = set()
    kept = []
    for file in files:
        real = file.resolve()
        if real not in seen:
            seen.add(real)
            kept.append(file)
    return kept


def shown_path(file: Path, root: Path) -> str:
    """How a policy file is named in reasons, diagnostics and `GET /policy`: relative to the
    policy root (a lone file by its name), so the library, the commands and the service all
    say the same, and no server's directory layout reaches a caller."""
    if file == root:
        return file.name
    return file.relative_to(root).as_posix()


def read_sources(path: str | Path | None) -> list[Source]:
    """Every policy file as a Source, shown by its path relative to the policy root."""
    root, files = policy_paths(path)
    sources = []
    for file in files:
        shown = shown_path(file, root)
        try:
            sources.append(Source.read(file, shown))
        except UnicodeDecodeError as exc:
            raise PolicyLoadError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise PolicyLoadError(f"{shown}: cannot be read ({exc.strerror})") from None
    return sources


def content_hash(sources: list[Source]) -> str:
    """The policy version: a hash of every file's name and text, in set order."""
    digest = hashlib.sha256()
    for source in sources:
        name = Path(source.path).name.encode()
        text = source.text.encode()
        digest.update(len(name).to_bytes(4, "big") + name + len(text).to_bytes(8, "big") + text)
    return "sha256:" + digest.hexdigest()[:16]


def parse_sources(sources: list[Source]) -> tuple[ast.PolicySet, list[Diagnostic]]:
    """Parse every file; a file with a syntax error is left out and reported."""
    files, diagnostics = [], []
    # Files unchanged since the last set was parsed are not parsed again (parse_cache.py).
    for parsed in parse_cache.parse_each(sources, _parse_one):
        if isinstance(parsed, Diagnostic):
            diagnostics.append(parsed)
        else:
            files.append(parsed)
    return ast.PolicySet(tuple(files), content_hash(sources)), diagnostics


def _parse_one(source: Source) -> ast.PolicyFile | Diagnostic:
    """One file's tree, or the syntax error that stops it."""
    try:
        return parse(source)
    except PolicyError as exc:
        return exc.to_diagnostic()
    except RecursionError:
        return error("policy_parse_error", "expression nested too deeply", None)


def load_set(path: str | Path | None) -> tuple[ast.PolicySet, list[Diagnostic]]:
    """Read and parse a policy set: the tree and any syntax errors."""
    return parse_sources(read_sources(path))
