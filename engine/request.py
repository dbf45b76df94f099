"""Request validation: a JSON/YAML request -> normalised values, or RequestError naming the field.

A request is checked against the set's attribute schema before anything is
decided. The result is an *environment*: a flat dict from attribute path to
its value in canonical form (full tree paths, classifications as ranks, dates
as `datetime.date`), with defaults filled in. Attributes the request omits and
that have no default are simply absent: the compiled rules read them as
unknown. The raw request is kept under `RAW` for `has` and for wording, and
the words a decision's summary uses under `WORDS`, taken at once so that a
summary read later says what the request said when it was decided.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine import ast, clock
from engine._codegen import define
from engine.errors import RequestError, did_you_mean
from engine.symbols import VOCABULARY_KINDS, Attribute, NameLookupError, Vocabulary

# The environment key holding the raw request (never an attribute path).
RAW = "@raw"
# The environment key holding the summary's words: SUMMARY_PATHS as the request gave them.
WORDS = "@words"

# The built-ins a decision's summary names, in the order of its words (explain.summary).
SUMMARY_PATHS = ("requester.role", "requester.agency", "action", "resource.category",
                 "resource.owner", "purpose")

# Built-ins every request must give, in the order their absence is reported.
REQUIRED = ("requester.role", "requester.agency", "action", "purpose",
            "resource.category", "resource.classification", "resource.owner")

# Kinds of check, one per attribute type; _SET checks each member with the spec's `member`.
_VOCAB, _BOOL, _NUMBER, _STRING, _DATE, _SET = range(6)

_EXPECTED = {
    "action": "an action name", "role": "a role name", "agency": "an agency name",
    "purpose": "a purpose name", "category": "a data category name",
    "classification": "a classification name", "bool": "true or false", "number": "a number",
    "string": "a string", "date": "a date like 2025-06-01",
}


class _Today:
    """Today's date in ENGINE_TIMEZONE, looked up once a day rather than on every request."""

    __slots__ = ("_until", "date", "iso")

    def __init__(self) -> None:
        self._refresh()

    def __call__(self) -> dt.date:
        if time.time() >= self._until:
            self._refresh()
        return self.date

    def _refresh(self) -> None:
        # The zone is read each time the day turns, so a changed setting is seen by tomorrow.
        tz = clock.configured_zone()
        self.date = clock.today(tz)
        self.iso = self.date.isoformat()
        self._until = clock.next_midnight(self.date, tz)


today = _Today()


def describe(value: Any) -> str:
    """A request value as a person would recognise it in an error message."""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dt.date):
        return value.isoformat()
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True)
class _Spec:
    """How to check one attribute: its path, kind of check and lookup table."""

    path: str
    check: int
    attribute: Attribute
    table: Mapping[str, Any] | None = None
    member: _Spec | None = None  # a set: how to check each member


class RequestSchema:
    """The request schema of one vocabulary, with every name's spellings resolved once."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.spellings = {kind: _spellings(vocab, kind) for kind in VOCABULARY_KINDS}
        self.specs = {path: self._spec(attr) for path, attr in vocab.attributes.items()}
        # Per dict in the request (the top level, `requester`, ...): key -> spec or sub-dict.
        self.tree: dict[str, Any] = {}
        for path, spec in self.specs.items():
            node = self.tree
            *parents, leaf = path.split(".")
            for part in parents:
                child = node.setdefault(part, {})
                if isinstance(child, _Spec):  # an attribute and a prefix at once: keep the attribute
                    break
                node = child
            else:
                node.setdefault(leaf, spec)
        for root in ("requester", "resource", "context"):
            self.tree.setdefault(root, {})
        self.defaults = {path: self.canonical_default(spec) for path, spec in self.specs.items()
                         if spec.attribute.default is not None}
        self.default_words = {path: default_words(spec.attribute) for path, spec in self.specs.items()
                              if spec.attribute.default is not None}

        self.fast_validate = _generate_validator(self)

    def _spec(self, attr: Attribute) -> _Spec:
        if attr.kind == "set":
            member = self._spec(Attribute(attr.path, attr.element or "string", attr.values))
            return _Spec(attr.path, _SET, attr, member=member)
        if attr.kind in VOCABULARY_KINDS:
            return _Spec(attr.path, _VOCAB, attr, self.spellings[attr.kind])
        if attr.kind == "one_of":
            return _Spec(attr.path, _VOCAB, attr, {v: v for v in attr.values})
        check = {"bool": _BOOL, "number": _NUMBER, "string": _STRING, "date": _DATE}.get(attr.kind, _STRING)
        return _Spec(attr.path, check, attr)

    def canonical_default(self, spec: _Spec) -> Any:
        """An attribute's default in canonical form (a declared name resolved, a rank, a date;
        a set as a frozenset of those)."""
        default = spec.attribute.default
        if isinstance(default, ast.SetLit):
            member = spec.member or spec
            return frozenset(self.canonical_default(replace(member, attribute=replace(member.attribute, default=v)))
                             for v in default.values)
        if isinstance(default, ast.Name):
            return (spec.table or {}).get(default.text, default.text)
        return None if default is None else default.value

    # --- validation ----------------------------------------------------------

    def validate(self, request: Any) -> dict[str, Any]:
        """The request's environment; RequestError for anything that is not a valid request."""
        try:
            env = self.fast_validate(request)
        except TypeError:  # an unhashable value where a name belongs
            env = None
        return env if env is not None else self.validate_slowly(request)

    def validate_slowly(self, request: Any) -> dict[str, Any]:
        """Validation that stops at the first mistake and says exactly what it is."""
        if not isinstance(request, dict):
            raise RequestError("", f"expected a request object, got {describe(request)}")
        env = dict(self.defaults)
        self._walk(request, self.tree, "", env)
        missing = [RequestError(path, "required field is missing") for path in REQUIRED if path not in env]
        if missing:
            first = missing[0]
            if len(missing) == 1:
                raise first
            raise RequestError(first.field, f"required field is missing, and {len(missing) - 1} more "
                                            f"(every one is listed in `errors`)", errors=tuple(missing))
        if "context.date" not in env:
            env["context.date"] = today()
        env[RAW] = request
        env[WORDS] = tuple(words(env, path, self) for path in SUMMARY_PATHS)
        return env

    def _walk(self, given: dict[str, Any], node: dict[str, Any], prefix: str, env: dict[str, Any]) -> None:
        for key, value in given.items():
            spec = node.get(key) if isinstance(key, str) else None
            if spec.__class__ is _Spec:
                if value is not None:
                    env[spec.path] = self._value(spec, value)
            elif spec is not None:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise RequestError(prefix + key, f"expected an object of {prefix + key} attributes, "
                                                     f"got {describe(value)}")
                self._walk(value, spec, f"{prefix}{key}.", env)
            else:
                raise self._undeclared(prefix, key)

    def _value(self, spec: _Spec, value: Any) -> Any:
        check = spec.check
        if check == _SET:
            return self._members(spec, value)
        if check == _VOCAB:
            found = spec.table.get(value) if value.__class__ is str and spec.table is not None else None
            if found is None:
                raise self._bad_name(spec, value)
            return found
        if check == _BOOL:
            if value.__class__ is bool:
                return value
        elif check == _NUMBER:
            if (value.__class__ is int or value.__class__ is float) and math.isfinite(value):
                return value
        elif check == _STRING:
            if isinstance(value, str):
                return value
        elif check == _DATE:
            found = parse_date(value)
            if found is not None:
                return found
        raise RequestError(spec.path, f"expected {_EXPECTED[spec.attribute.kind]}, got {describe(value)}")

    def _members(self, spec: _Spec, value: Any) -> frozenset[Any]:
        """A set attribute: a list, each member checked and named by its place (`path[2]`)."""
        if not isinstance(value, (list, tuple)):
            raise RequestError(spec.path, f"expected a list, got {describe(value)}",
                               f"`{spec.path}` is a set: give it as a list, like [a, b], or [] for none")
        assert spec.member is not None
        found = []
        for index, item in enumerate(value):
            try:
                found.append(self._value(spec.member, item))
            except RequestError as exc:
                raise RequestError(f"{spec.path}[{index}]", exc.message, exc.help) from None
        return frozenset(found)

    def _bad_name(self, spec: _Spec, value: Any) -> RequestError:
        attr = spec.attribute
        if attr.kind == "one_of":
            choices = ", ".join(attr.values)
            shown = describe(value)
            help = did_you_mean(value, attr.values) if isinstance(value, str) else None
            return RequestError(spec.path, f"expected one of {choices}, got {shown}", help)
        if not isinstance(value, str):
            return RequestError(spec.path, f"expected {_EXPECTED[attr.kind]}, got {describe(value)}")
        try:
            self.vocab.resolve(attr.kind, value)
        except NameLookupError as exc:
            return RequestError(spec.path, exc.message, exc.help)
        return RequestError(spec.path, f"unknown {attr.kind} `{value}`")  # pragma: no cover

    def _undeclared(self, prefix: str, key: Any) -> RequestError:
        if not isinstance(key, str):
            return RequestError(prefix.rstrip("."), f"unexpected key {describe(key)}")
        path = prefix + key
        if not prefix:
            known = [k for k in ("requester", "action", "resource", "purpose", "context") if k in self.tree]
            return RequestError(path, "is not part of a request",
                                did_you_mean(key, known) or f"a request has {', '.join(known)}")
        # Compare with the names beside it: a shared `context.` says nothing about closeness.
        siblings = {p[len(prefix):]: p for p in self.specs if p.startswith(prefix)}
        close = difflib.get_close_matches(key, list(siblings), n=1, cutoff=0.6)
        elsewhere = [p for p in self.specs if p.rsplit(".", 1)[-1] == key]  # under another section
        if elsewhere:  # the very name, in another section: surely the one meant
            help = f"did you mean `{elsewhere[0]}`? `{key}` is declared under `{elsewhere[0].rsplit('.', 1)[0]}`"
        elif close:
            help = f"did you mean `{siblings[close[0]]}`?"
        else:
            help = "declare it in an `attributes` block"
        return RequestError(path, "is not a declared attribute", help)


# --- the generated fast path ------------------------------------------------------------

SECTIONS = ("requester", "resource", "context")
TOP_KEYS = frozenset(("requester", "resource", "context", "action", "purpose"))


def simple_shape(schema: RequestSchema) -> bool:
    """Every attribute is `section.name` (or a top-level built-in): what generated code handles."""
    return all(p in TOP_KEYS or (len(p.split(".")) == 2 and p.split(".")[0] in SECTIONS) for p in schema.specs)


def source_of(path: str) -> str:
    """Generated code reading `path` from the request `r` or a section `s0`..`s2`."""
    parts = path.split(".")
    return f"r.get({parts[0]!r})" if len(parts) == 1 else f"s{SECTIONS.index(parts[0])}.get({parts[1]!r})"


def item_of(path: str) -> str:
    """Like `source_of`, but by subscript: KeyError when the request lacks it."""
    parts = path.split(".")
    return f"r[{parts[0]!r}]" if len(parts) == 1 else f"s{SECTIONS.index(parts[0])}[{parts[1]!r}]"


def section_keys(schema: RequestSchema, section: str) -> frozenset[str]:
    return frozenset(p.split(".")[1] for p in schema.specs if p.startswith(section + "."))


# How generated code tells a valid value `{v}` (table `{t}`) from one the slow path must judge.
CHECKS = {
    _BOOL: "{v}.__class__ is not bool",
    _NUMBER: "({v}.__class__ is not int and ({v}.__class__ is not float or not _finite({v})))",
    _STRING: "{v}.__class__ is not str",
}


def required_sections(schema: RequestSchema) -> list[str]:
    """The sections every request has: those holding a required attribute (requester, resource)."""
    return [section for section in SECTIONS
            if any(p.startswith(section + ".") and spec.attribute.required for p, spec in schema.specs.items())]


def _generate_validator(schema: RequestSchema) -> Callable[[Any], dict[str, Any] | None]:
    """A straight-line validator for well-formed requests; None sends a request to validate_slowly.

    Requests are validated on every uncached decision, so the common case is
    compiled to one read and one lookup or type test per attribute. Anything
    unusual returns None (a KeyError or ValueError on the way means the same)
    and the slow path finds and words the mistake. A dict holds nothing
    undeclared when its length is the number of attributes read from it; only
    when it is not (a null, or an undeclared key) are its keys compared.
    """
    specs = schema.specs
    needed = required_sections(schema)
    top = [k for k in TOP_KEYS if k not in SECTIONS]
    if not simple_shape(schema) or not all(k in specs and specs[k].attribute.required for k in top) \
            or not all(p in specs and specs[p].attribute.required for p in SUMMARY_PATHS):
        return lambda request: None
    namespace: dict[str, Any] = {"_RAW": RAW, "_WORDS": WORDS, "_DEFAULTS": schema.defaults, "_today": today,
                                 "_date": parse_date, "_fromiso": dt.date.fromisoformat, "_finite": math.isfinite,
                                 "_TOP": TOP_KEYS, "_EMPTY": {}}
    lines = ["def fast_validate(r):", "    if r.__class__ is not dict: return None"]
    for n, section in enumerate(SECTIONS):
        lines.append(f"    s{n} = r.get({section!r})")
        if section in needed:
            lines.append(f"    if s{n}.__class__ is not dict: return None")
        else:
            lines += [f"    if s{n} is None: s{n} = _EMPTY", f"    elif s{n}.__class__ is not dict: return None"]
    counted = " + ".join([str(len(needed) + len(top))] + [f"(s{n} is not _EMPTY)"
                                                          for n, section in enumerate(SECTIONS)
                                                          if section not in needed])
    lines += [f"    if len(r) != {counted} and not r.keys() <= _TOP: return None",
              "    env = _DEFAULTS.copy()", "    env[_RAW] = r"]
    # n<section>: how many of the section's attributes the request gave (required ones always).
    for n, section in enumerate(SECTIONS):
        given = sum(1 for p, spec in specs.items() if p.startswith(section + ".") and spec.attribute.required)
        lines.append(f"    n{n} = {given}")
    lines.append("    try:")
    body = "        "
    for i, (path, spec) in enumerate(specs.items()):
        lines += _attribute_lines(namespace, f"v{i}", i, path, spec, body)
    for n, section in enumerate(SECTIONS):
        namespace[f"_K{n}"] = section_keys(schema, section)
        lines.append(f"{body}if len(s{n}) != n{n} and not s{n}.keys() <= _K{n}: return None")
    number = {path: i for i, path in enumerate(specs)}
    lines += [f"{body}env[_WORDS] = ({', '.join(f'v{number[p]}' for p in SUMMARY_PATHS)},)",
              "    except (KeyError, ValueError):", "        return None", "    return env"]
    validate: Callable[[Any], dict[str, Any] | None] = define("fast_validate", lines, namespace)
    return validate


def _attribute_lines(namespace: dict[str, Any], v: str, i: int, path: str, spec: _Spec, body: str) -> list[str]:
    """Generated lines reading attribute `path` into `v` and, when valid, its canonical value into env.

    A required one is read by subscript: missing, it raises KeyError; a null misses its table.
    """
    key = repr(path)
    if spec.attribute.required:
        lines = [f"{body}{v} = {item_of(path)}"]
        if spec.check == _VOCAB:
            namespace[f"_T{i}"] = spec.table
            return lines + [f"{body}env[{key}] = _T{i}[{v}]"]
        inner = body
        lines.append(f"{body}if {v} is None: return None")
    else:
        lines = [f"{body}{v} = {source_of(path)}"]
        if path == "context.date":
            lines += [f"{body}if {v} is None: env[{key}] = _today()", f"{body}else:"]
        else:
            lines.append(f"{body}if {v} is not None:")
        inner = body + "    "
        if "." in path:  # counted as given (see n<section> in _generate_validator)
            lines.append(f"{inner}n{SECTIONS.index(path.split('.')[0])} += 1")
    if spec.check == _VOCAB:
        namespace[f"_T{i}"] = spec.table
        lines.append(f"{inner}env[{key}] = _T{i}[{v}]")
    elif spec.check == _SET:
        namespace[f"_S{i}"] = members_reader(spec)
        lines.append(f"{inner}env[{key}] = _S{i}({v})")
    elif spec.check == _DATE:
        lines += [f"{inner}if {v}.__class__ is str and len({v}) == 10 and {v}[4] == '-' and {v}[7] == '-':",
                  f"{inner}    env[{key}] = _fromiso({v})",
                  f"{inner}elif {v}.__class__ is _day: env[{key}] = {v}",
                  f"{inner}else: return None"]
        namespace["_day"] = dt.date
    else:
        lines += [f"{inner}if {CHECKS[spec.check].format(v=v)}: return None", f"{inner}env[{key}] = {v}"]
    return lines


def members_reader(spec: _Spec) -> Callable[[Any], frozenset[Any]]:
    """For generated code: a set attribute's list as a frozenset of canonical members, or
    ValueError (KeyError for an unknown name) so that the slow path words the mistake."""
    member = spec.member
    assert member is not None
    if member.check == _VOCAB:
        table = member.table or {}

        def names(value: Any) -> frozenset[Any]:
            if value.__class__ is not list:
                raise ValueError(spec.path)
            return frozenset([table[item] for item in value])

        return names
    if member.check == _DATE:
        def dates(value: Any) -> frozenset[Any]:
            if value.__class__ is not list:
                raise ValueError(spec.path)
            found = [parse_date(item) for item in value]
            if None in found:
                raise ValueError(spec.path)
            return frozenset(found)

        return dates
    bad = {_BOOL: lambda x: x.__class__ is not bool, _STRING: lambda x: x.__class__ is not str,
           _NUMBER: lambda x: (x.__class__ is not int and (x.__class__ is not float or not math.isfinite(x)))}
    wrong = bad[member.check]

    def values(value: Any) -> frozenset[Any]:
        if value.__class__ is not list or any(map(wrong, value)):
            raise ValueError(spec.path)
        return frozenset(value)

    return values


def parse_date(value: Any) -> dt.date | None:
    """A `YYYY-MM-DD` string (or a date, as YAML gives) as a date; None when it is not one."""
    if value.__class__ is dt.date:
        return value
    if value.__class__ is str and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def default_words(attr: Attribute) -> Any:
    """An attribute's default as the policy wrote it (names as text, dates as ISO)."""
    default = attr.default
    if isinstance(default, ast.SetLit):
        return [default_words(replace(attr, default=v)) for v in default.values]
    if isinstance(default, ast.Name):
        return default.text
    if isinstance(default, ast.DateLit):
        return default.value.isoformat()
    return None if default is None else default.value


def _spellings(vocab: Vocabulary, kind: str) -> dict[str, Any]:
    """Every way a request may name a value of `kind` -> its canonical form.

    Tree nodes answer to their full path and every unique trailing part of it;
    classifications become their rank.
    """
    tree = vocab.hierarchy(kind)
    if tree is not None:
        table = {}
        for name in tree.names:
            parts = name.split(".")
            for i in range(len(parts)):
                spelling = ".".join(parts[i:])
                try:
                    table[spelling] = tree.resolve(spelling)
                except NameLookupError:
                    pass  # ambiguous: the request must spell it out
        return table
    if kind == "classification":
        return dict(vocab.classifications)
    return {name: name for name in vocab.values_of(kind)}


def words(env: dict[str, Any], path: str, schema: RequestSchema) -> Any:
    """The value of `path` in the request's own words: as given, else the default, else None."""
    node: Any = env[RAW]
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        if path == "context.date":
            return env["context.date"].isoformat()
        return schema.default_words.get(path)
    if isinstance(node, dt.date):
        return node.isoformat()
    return node
