"""Read policy test files (*.test.yaml) into cases that remember their lines.

A test file is YAML: an optional `defaults` mapping deep-merged under every
case's request, and a `cases` list. The YAML is composed into nodes first so
that every mistake, and every request field, can point at its file and line.
A mistake in one case is recorded on that case (it fails, the rest still run);
a file that is not YAML, or not that mapping, cannot be loaded at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import did_you_mean

try:  # libyaml is several times faster on large test files
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

CASE_FIELDS = ("name", "request", "expect", "by", "obligations", "undetermined")
REQUIRED_FIELDS = ("name", "request", "expect")
FILE_FIELDS = ("defaults", "cases")
EXPECTATIONS = ("permit", "deny")
_MERGE_KEY = "<<"


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake in a test file: what is wrong and where (1-based line, column)."""

    path: str
    line: int
    column: int
    message: str
    help: str | None = None
    source_line: str | None = None  # the line at fault, shown with a caret under the column

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"

    def excerpt(self) -> list[str]:
        """The line at fault and a caret under the column, when known."""
        if self.source_line is None:
            return []
        shown = self.source_line.expandtabs(1)  # a tab is one column, as YAML counts it
        return [f"    {shown}", "    " + " " * (self.column - 1) + "^"]


@dataclass(frozen=True, slots=True)
class Case:
    """One test case as written, its request merged with the file's defaults.

    `problems` are mistakes in the case itself; such a case is not decided.
    `field_lines` maps request fields (`requester.role`) to the line that
    gave them, in the case or in `defaults`.
    """

    __test__ = False  # not a pytest test class

    path: str
    line: int
    name: str
    request: dict[str, Any]
    expect: str | None
    by: tuple[str, ...] = ()
    obligations: tuple[str, ...] | None = None  # exactly the names that apply, when given
    problems: tuple[Problem, ...] = ()
    field_lines: Mapping[str, int] = field(default_factory=dict, repr=False)
    named: bool = True
    case_lines: Mapping[str, int] = field(default_factory=dict, repr=False)  # `by`, `obligations`, ...
    undetermined: tuple[str, ...] | None = None  # exactly the names of the undetermined ones, when given

    def line_of(self, request_field: str) -> int:
        """The line that gave a request field, else the case's own line."""
        parts = request_field.split(".")
        for end in range(len(parts), 0, -1):
            line = self.field_lines.get(".".join(parts[:end]))
            if line is not None:
                return line
        return self.line


@dataclass(frozen=True, slots=True)
class TestFile:
    """A test file's cases, or the problem that kept it from loading."""

    __test__ = False

    path: str
    cases: tuple[Case, ...] = ()
    problem: Problem | None = None


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`: nested mappings merge, every other value of `over` wins."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def read_test_file(path: Path, shown: str, rule_ids: Collection[str]) -> TestFile:
    """Load one test file; `rule_ids` are the rules a case's `by` may name."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return TestFile(shown, problem=Problem(shown, 1, 1, f"not UTF-8 text (byte {exc.start})"))
    except OSError as exc:
        return TestFile(shown, problem=Problem(shown, 1, 1, f"cannot be read ({exc.strerror})"))
    try:
        node, data, duplicates = _compose_and_construct(text)
    except yaml.YAMLError as exc:
        return TestFile(shown, problem=_yaml_problem(shown, exc, text))
    try:
        return _read_document(shown, node, data, duplicates, rule_ids)
    except _FileProblem as exc:
        return TestFile(shown, problem=exc.problem)


# --- YAML -------------------------------------------------------------------


class _FileProblem(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


class _Loader(_BaseLoader):
    """The safe loader, remembering repeated keys and the tags of scalars it has seen.

    Test files repeat the same few words thousands of times (`permit`,
    `requester`, role names); resolving each one's tag with regular expressions
    is most of the time a large file takes, so each distinct scalar resolves once.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.tags: dict[tuple[Any, ...], str] = {}
        self.repeated: list[yaml.Node] = []
        self.checked: set[int] = set()

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        key = (kind, value, implicit)
        tag = self.tags.get(key)
        if tag is None:
            tag = self.tags[key] = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Checked before `<<` merges are flattened into the mapping; the
        # constructor calls this once for each mapping node, merged ones too.
        if id(node) not in self.checked:
            self.checked.add(id(node))
            keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
            if len(set(keys)) != len(keys):
                seen: set[str] = set()
                for key, _ in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value != _MERGE_KEY:
                        if key.value in seen:
                            self.repeated.append(key)
                        seen.add(key.value)
        super().flatten_mapping(node)


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any, list[yaml.Node]]:
    """The node tree, the data, and every key that repeats one before it in its mapping."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None, []
        data = loader.construct_document(node)
        repeated = sorted(loader.repeated, key=lambda key: (key.start_mark.line, key.start_mark.column))
        return node, data, repeated
    finally:
        loader.dispose()


compose_yaml = _compose_and_construct  # for other readers of YAML requests (`engine decide`)


def _yaml_problem(shown: str, exc: yaml.YAMLError, text: str = "") -> Problem:
    """A YAML error at the line to fix, with the line shown and help in plain words.

    PyYAML reports where it gave up, which for an unclosed `{`, `[` or quote
    is a line or more after the mistake; its `context_mark` is where the
    unclosed thing began, which is where the fix goes.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None) or ""
    message = f"{problem} ({context})" if context and getattr(exc, "problem", None) else problem
    if mark is None:
        return Problem(shown, 1, 1, f"not valid YAML: {message}")
    context_mark = getattr(exc, "context_mark", None)
    help = None
    opener = {"flow mapping": "{", "flow sequence": "[", "quoted scalar": '"'}
    unclosed = next((sign for what, sign in opener.items() if what in context), None)
    if unclosed is not None and context_mark is not None:
        mark = context_mark
        closer = {"{": "}", "[": "]"}.get(unclosed, unclosed)
        sign = text[mark.index] if 0 <= mark.index < len(text) else unclosed
        message = f"the `{sign}` here is never closed"
        help = f"add `{closer if sign != chr(39) else sign}` to close it, on line {mark.line + 1}"
    elif "tab" in problem:
        message = "a tab in the indentation"
        help = f"YAML indents with spaces, not tabs: replace the tab on line {mark.line + 1} with spaces"
    elif "block end" in problem or "'-' indicator" in problem or "block mapping" in context:
        message = "this line is indented differently from the lines above it"
        help = ("the keys of a case (`name`, `request`, `expect`) line up under each other, "
                "indented with spaces")
    elif "mapping values are not allowed" in problem:
        help = ('put text that contains `: ` in quotes, as in `name: "nurse: night shift"`, '
                f"or indent line {mark.line + 1} like the lines above it")
    lines = text.split("\n")
    source_line = lines[mark.line].rstrip("\r") if text and mark.line < len(lines) else None
    return Problem(shown, mark.line + 1, mark.column + 1, f"not valid YAML: {message}", help, source_line)


def _at(shown: str, node: yaml.Node, message: str, help: str | None = None) -> Problem:
    mark = node.start_mark
    return Problem(shown, mark.line + 1, mark.column + 1, message, help)


def _fields(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Key text -> (key node, value node); the last one wins, as in the constructed data."""
    return {key.value: (key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)}


# --- the document -----------------------------------------------------------

_FILE_SHAPE = "a test file is a mapping with `cases` (a list) and optional `defaults`"


def _read_document(shown: str, node: yaml.Node | None, data: Any, duplicates: list[yaml.Node],
                   rule_ids: Collection[str]) -> TestFile:
    fields = _top_level(shown, node, data)
    defaults, default_lines = _defaults(shown, fields, data)
    cases_node, cases = fields["cases"][1], data.get("cases")
    outside = [key for key in duplicates if not _within(key, cases_node)]
    if outside:
        raise _FileProblem(_duplicate(shown, outside[0]))
    if cases is None:
        return TestFile(shown)
    if not isinstance(cases_node, yaml.SequenceNode) or not isinstance(cases, list):
        raise _FileProblem(_at(shown, cases_node, "`cases` must be a list of cases"))
    reader = _CaseReader(shown, defaults, default_lines, duplicates, rule_ids)
    return TestFile(shown, tuple(reader.read(n, d, i) for i, (n, d) in enumerate(zip(cases_node.value, cases))))


def _top_level(shown: str, node: yaml.Node | None, data: Any) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if node is None:
        raise _FileProblem(Problem(shown, 1, 1, "the file is empty", _FILE_SHAPE))
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise _FileProblem(_at(shown, node, "the top level is not a mapping", _FILE_SHAPE))
    fields = _fields(node)
    for key, (key_node, _) in fields.items():
        if key not in FILE_FIELDS:
            help = _did_you_mean(key, FILE_FIELDS) or _FILE_SHAPE
            raise _FileProblem(_at(shown, key_node, f"unknown top-level field `{key}`", help))
    if "cases" not in fields:
        raise _FileProblem(_at(shown, node, "no `cases` list", _FILE_SHAPE))
    return fields


def _defaults(shown: str, fields: dict[str, Any], data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """The `defaults` request fields (dates as text) and the line of each."""
    if "defaults" not in fields or data.get("defaults") is None:
        return {}, {}
    node, defaults = fields["defaults"][1], data["defaults"]
    if not isinstance(defaults, dict):
        raise _FileProblem(_at(shown, node, "`defaults` must be a mapping of request fields"))
    return _plain(defaults), _field_lines(node)


def _within(inner: yaml.Node, outer: yaml.Node) -> bool:
    return outer.start_mark.index <= inner.start_mark.index < outer.end_mark.index


def _duplicate(shown: str, key: yaml.Node) -> Problem:
    return _at(shown, key, f"`{key.value}` is given twice in one mapping", "the second would silently win; keep one")


def _field_lines(node: yaml.Node, prefix: str = "", into: dict[str, int] | None = None) -> dict[str, int]:
    """Dotted request field -> 1-based line, for every key under a mapping node."""
    lines = {} if into is None else into
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != _MERGE_KEY:
                path = f"{prefix}{key.value}"
                lines[path] = key.start_mark.line + 1
                _field_lines(value, path + ".", lines)
            else:
                _field_lines(value, prefix, lines)
    return lines


def _plain(value: Any) -> Any:
    """Dates and times as the ISO text a JSON request would carry."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _did_you_mean(name: str, candidates: Collection[str]) -> str | None:
    return did_you_mean(name, candidates) if isinstance(name, str) else None


class _CaseReader:
    """Turns case nodes into Cases, recording each mistake where it was made."""

    def __init__(self, shown: str, defaults: dict[str, Any], default_lines: dict[str, int],
                 duplicates: list[yaml.Node], rule_ids: Collection[str]):
        self.shown = shown
        self.duplicates = duplicates
        self.defaults = defaults
        self.default_lines = default_lines
        self.rule_ids = rule_ids

    def read(self, node: yaml.Node, data: Any, index: int) -> Case:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
            problem = _at(self.shown, node, "a case must be a mapping with `name`, `request` and `expect`")
            return Case(self.shown, line, f"case {index + 1}", {}, None, problems=(problem,), named=False)
        fields = _fields(node)
        problems = [*self._unknown(fields), *self._missing(node, fields), *self._repeated(node)]
        name = data.get("name")
        named = isinstance(name, (str, int, float)) and str(name).strip() != ""
        if "name" in fields and not named:
            problems.append(_at(self.shown, fields["name"][1], "`name` must be a non-empty text"))
        request = self._request(fields, data, problems)
        return Case(
            path=self.shown,
            line=line,
            name=str(name) if named else f"case {index + 1}",
            request=request,
            expect=self._expect(fields, data, problems),
            by=self._by(fields, data, problems),
            obligations=self._obligations(fields, data, problems),
            undetermined=self._obligations(fields, data, problems, "undetermined"),
            problems=tuple(problems),
            field_lines=self._lines(fields),
            named=named,
            case_lines={key: key_node.start_mark.line + 1 for key, (key_node, _) in fields.items()},
        )

    def _unknown(self, fields: dict[str, Any]) -> list[Problem]:
        return [
            _at(self.shown, key_node, f"unknown case field `{key}`",
                _did_you_mean(key, CASE_FIELDS) or "a case has " + ", ".join(f"`{f}`" for f in CASE_FIELDS))
            for key, (key_node, _) in fields.items() if key not in CASE_FIELDS
        ]

    def _repeated(self, node: yaml.Node) -> list[Problem]:
        if not self.duplicates:
            return []
        return [_duplicate(self.shown, key) for key in self.duplicates if _within(key, node)]

    def _missing(self, node: yaml.Node, fields: dict[str, Any]) -> list[Problem]:
        return [
            _at(self.shown, node, f"the case has no `{key}`")
            for key in REQUIRED_FIELDS if key not in fields
        ]

    def _request(self, fields: dict[str, Any], data: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
        request = data.get("request")
        if "request" not in fields:
            return {}
        if not isinstance(request, dict):
            problems.append(_at(self.shown, fields["request"][1], "`request` must be a mapping of request fields"))
            return {}
        return deep_merge(self.defaults, _plain(request))

    def _expect(self, fields: dict[str, Any], data: dict[str, Any], problems: list[Problem]) -> str | None:
        expect = data.get("expect")
        if "expect" not in fields:
            return None
        if expect not in EXPECTATIONS:
            problems.append(_at(self.shown, fields["expect"][1], f"`expect` must be permit or deny, not `{expect}`",
                                _did_you_mean(str(expect), EXPECTATIONS)))
            return None
        return str(expect)

    def _by(self, fields: dict[str, Any], data: dict[str, Any], problems: list[Problem]) -> tuple[str, ...]:
        if "by" not in fields:
            return ()
        by, node = data.get("by"), fields["by"][1]
        names = [by] if isinstance(by, str) else by
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            problems.append(_at(self.shown, node, "`by` must be a rule id or a list of rule ids"))
            return ()
        for i, name in enumerate(names):
            if name not in self.rule_ids and name != "role_not_held":  # a deny before any rule (LANGUAGE.md §2)
                where = node.value[i] if isinstance(node, yaml.SequenceNode) else node
                problems.append(_at(self.shown, where, f"`by` names `{name}`, which is not a rule of the policy set",
                                    did_you_mean(name, self.rule_ids)))
        return tuple(names)

    def _obligations(self, fields: dict[str, Any], data: dict[str, Any], problems: list[Problem],
                     key: str = "obligations") -> tuple[str, ...] | None:
        if key not in fields:
            return None
        names = data.get(key)
        if names is None:
            return ()
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(_at(self.shown, fields[key][1], f"`{key}` must be a list of obligation names"))
            return None
        return tuple(names)

    def _lines(self, fields: dict[str, Any]) -> dict[str, int]:
        if "request" not in fields:
            return self.default_lines
        return {**self.default_lines, **_field_lines(fields["request"][1])}
