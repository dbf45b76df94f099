"""Generated policy sets and requests, for the equivalence tests and the benchmarks.

A policy set is built as a small model (vocabulary, rules, policy-wide
obligations, each clause and expression as plain data), rendered to policy
text, and written as `.policy` files. Requests are drawn against the model,
often aimed at one rule so that rules apply and near misses happen.

Nothing here imports the engine: the generated text is the only thing the
engine sees, and the model is what the benchmark translates for Cedar.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

# --- the model --------------------------------------------------------------------

# Expressions are tuples:
#   ("or", [e, ...]) ("and", [e, ...]) ("not", e) ("attr", path) ("bool", True)
#   ("cmp", op, left, right) ("in", left, [value, ...]) ("ingroup", left, group)
#   ("is", left, node) ("has", path) ("member", left, set path)
# Operands (left, right, values) are ("attr", path) or ("lit", kind, value), where
# kind is name (a bare identifier), string, number, date or bool; a date operand of
# a comparison may also be ("shift", operand, "+" | "-", amount, unit).
Expr = tuple


@dataclass
class Attr:
    path: str
    kind: str  # bool number string date one_of action role agency purpose category classification set
    choices: tuple[str, ...] = ()
    default: Any = None  # a Python value: str for names, int/float, bool, dt.date; a list for a set
    element: str | None = None  # a set: the kind of its members

    def member(self) -> Attr:
        """A set's members as an attribute of their own kind."""
        return Attr(self.path, self.element or "string", self.choices)


@dataclass
class Agreement:
    name: str
    parties: tuple[str, ...] | None = None  # agencies or groups, two-way
    sources: tuple[str, ...] | None = None  # one-way: owners that disclose ...
    recipients: tuple[str, ...] | None = None  # ... to requesters in these
    valid: tuple[dt.date, dt.date] | None = None


@dataclass
class Obligation:
    name: str
    args: tuple = ()  # operands, as in expressions
    condition: tuple[str, Expr] | None = None  # ("when" | "unless", expr)


@dataclass
class Rule:
    effect: str
    id: str
    description: str | None = None
    # ("match", kind, names) ("data", categories, up_to) ("when", expr) ("unless", expr)
    # ("obligation", Obligation) ("because", text)
    clauses: list[tuple] = field(default_factory=list)

    def matches(self, kind: str) -> list[tuple[str, ...]]:
        return [c[2] for c in self.clauses if c[0] == "match" and c[1] == kind]


@dataclass
class PolicyObligation:
    outcome: str  # permit deny any
    obligation: Obligation


Item = Union[Rule, PolicyObligation]


@dataclass
class Vocab:
    actions: list[str] = field(default_factory=list)
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> parents, as declared
    role_at: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> agencies or groups after `at`
    purposes: list[str] = field(default_factory=list)  # full dotted paths, parents first
    categories: list[str] = field(default_factory=list)
    classifications: list[str] = field(default_factory=list)  # lowest first
    agencies: list[str] = field(default_factory=list)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # members: agencies or groups
    attributes: list[Attr] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)

    def tree(self, kind: str) -> list[str]:
        return self.purposes if kind == "purpose" else self.categories

    def full(self, kind: str, text: str) -> str:
        """The full path a written tree name stands for (exact, else the unique suffix)."""
        nodes = self.tree(kind)
        if text in nodes:
            return text
        (found,) = [n for n in nodes if n.endswith("." + text)]
        return found

    def names_for(self, kind: str, full: str) -> list[str]:
        """Every way to write a tree node: its full path and its unique trailing parts."""
        parts = full.split(".")
        found = []
        for i in range(len(parts)):
            suffix = ".".join(parts[i:])
            if [n for n in self.tree(kind) if n == suffix or n.endswith("." + suffix)] == [full]:
                found.append(suffix)
        return found

    def below(self, kind: str, node: str) -> list[str]:
        """Values at or below `node`: roles inheriting from it, tree nodes under it."""
        if kind == "role":
            return [r for r in self.roles if node in self.role_ancestors(r)]
        full = self.full(kind, node)
        return [n for n in self.tree(kind) if n == full or n.startswith(full + ".")]

    def role_ancestors(self, role: str) -> set[str]:
        seen, stack = {role}, [role]
        while stack:
            for parent in self.roles.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def group_agencies(self, name: str) -> set[str]:
        if name not in self.groups:
            return {name}
        found: set[str] = set()
        for member in self.groups[name]:
            found |= self.group_agencies(member)
        return found

    def attribute(self, path: str) -> Attr:
        return next(a for a in self.all_attributes() if a.path == path)

    def all_attributes(self) -> list[Attr]:
        return BUILTINS + self.attributes


BUILTINS = [
    Attr("requester.role", "role"), Attr("requester.agency", "agency"), Attr("action", "action"),
    Attr("purpose", "purpose"), Attr("resource.category", "category"),
    Attr("resource.classification", "classification"), Attr("resource.owner", "agency"),
    Attr("requester.id", "string"), Attr("resource.id", "string"), Attr("context.date", "date"),
]
REQUIRED = BUILTINS[:7]


@dataclass
class PolicyModel:
    vocab: Vocab
    items: list[Item]  # rules and policy-wide obligations, in set order
    combine: str | None = None  # None: no header
    files: int = 1  # how many rule files the items are spread over

    @property
    def rules(self) -> list[Rule]:
        return [i for i in self.items if isinstance(i, Rule)]

    def write(self, directory: Path) -> Path:
        """Write the set as .policy files under `directory`; return it."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in render_files(self):
            (directory / name).write_text(text, encoding="utf-8")
        return directory


# --- rendering ----------------------------------------------------------------------


def render_files(model: PolicyModel) -> list[tuple[str, str]]:
    """(file name, text) pairs: the vocabulary first, then the items in order."""
    files = [("00_vocabulary.policy", render_vocabulary(model))]
    count = max(1, model.files)
    size = -(-len(model.items) // count) or 1
    for n in range(count):
        chunk = model.items[n * size:(n + 1) * size]
        files.append((f"{10 + n:02d}_rules.policy", "".join(render_item(i) for i in chunk)))
    return files


def render_vocabulary(model: PolicyModel) -> str:
    v = model.vocab
    out = []
    if model.combine is not None:
        out.append(f'policy "Generated set" {{\n  version "1"\n  combine {model.combine}\n}}\n')
    out.append("actions { " + ", ".join(v.actions) + " }\n")
    out.append("roles {\n" + "".join(
        f"  {r}" + (" : " + ", ".join(ps) if ps else "")
        + (" at " + ", ".join(v.role_at[r]) if v.role_at.get(r) else "") + "\n" for r, ps in v.roles.items()) + "}\n")
    out.append("purposes {\n" + _render_tree(v.purposes) + "}\n")
    out.append("categories {\n" + _render_tree(v.categories) + "}\n")
    out.append("classifications " + " < ".join(v.classifications) + "\n")
    out.append("agencies {\n" + "".join(f'  {a} "Agency {a}"\n' for a in v.agencies) + "}\n")
    out.extend(f"group {g} = {{ {', '.join(ms)} }}\n" for g, ms in v.groups.items())
    if v.attributes:
        out.append("attributes {\n" + "".join(_render_attribute(a) for a in v.attributes) + "}\n")
    out.extend(_render_agreement(a) for a in v.agreements)
    return "".join(out)


def _render_tree(paths: list[str]) -> str:
    def children(prefix: str) -> list[str]:
        depth = prefix.count(".") + 1 if prefix else 0
        return [p for p in paths if p.count(".") == depth and (not prefix or p.startswith(prefix + "."))]

    def node(path: str) -> str:
        kids = children(path)
        name = path.rsplit(".", 1)[-1]
        return name + (" { " + ", ".join(node(k) for k in kids) + " }" if kids else "")

    return "".join(f"  {node(p)}\n" for p in children(""))


def _render_attribute(attr: Attr) -> str:
    of = attr.element if attr.kind == "set" else attr.kind
    kind = "one of { " + ", ".join(attr.choices) + " }" if of == "one_of" else of
    if attr.kind == "set":
        kind = "set of " + kind
    if attr.default is None:
        default = ""
    elif attr.kind == "set":
        default = " default {" + ", ".join(_literal(d, attr.element or "") for d in attr.default) + "}"
    else:
        default = " default " + _literal(attr.default, attr.kind)
    return f"  {attr.path} {kind}{default}\n"


def _render_agreement(a: Agreement) -> str:
    lines = []
    if a.parties is not None:
        lines.append("  parties " + ", ".join(a.parties))
    else:
        lines.append("  from " + ", ".join(a.sources))
        lines.append("  to " + ", ".join(a.recipients))
    if a.valid is not None:
        lines.append(f"  valid {a.valid[0].isoformat()} to {a.valid[1].isoformat()}")
    lines.append(f'  reference "REF-{a.name}"')
    return f'agreement {a.name} "Agreement {a.name}" {{\n' + "\n".join(lines) + "\n}\n"


def render_item(item: Item) -> str:
    if isinstance(item, PolicyObligation):
        return f"on {item.outcome} " + _render_obligation(item.obligation) + "\n"
    head = f"{item.effect} {item.id}" + (f' "{item.description}"' if item.description else "")
    body = "".join("  " + _render_clause(c) + "\n" for c in item.clauses)
    return f"{head} {{\n{body}}}\n"


def _render_clause(clause: tuple) -> str:
    tag = clause[0]
    if tag == "match":
        return f"{clause[1]} " + ", ".join(clause[2])
    if tag == "data":
        cats = ", ".join(clause[1]) if clause[1] else "any"
        return f"data {cats}" + (f" up to {clause[2]}" if clause[2] else "")
    if tag in ("when", "unless"):
        return f"{tag} " + render_expr(clause[1])
    if tag == "obligation":
        return _render_obligation(clause[1])
    if tag == "because":
        return f"because {_literal(clause[1], 'string')}"
    raise ValueError(tag)


def _render_obligation(o: Obligation) -> str:
    text = f"obligation {o.name}"
    if o.args:
        text += " " + ", ".join(_render_operand(a) for a in o.args)
    if o.condition is not None:
        text += f" {o.condition[0]} " + render_expr(o.condition[1])
    return text


_PRECEDENCE = {"or": 1, "and": 2, "not": 3}


def render_expr(expr: Expr, outer: int = 0) -> str:
    """Text for an expression, with the parentheses its nesting needs."""
    tag = expr[0]
    if tag in ("or", "and"):
        text = f" {tag} ".join(render_expr(e, _PRECEDENCE[tag] + 1) for e in expr[1])
        return f"({text})" if outer > _PRECEDENCE[tag] else text
    if tag == "not":
        text = "not " + render_expr(expr[1], _PRECEDENCE["not"])
        return f"({text})" if outer > _PRECEDENCE["not"] else text
    if tag == "paren":
        return "(" + render_expr(expr[1]) + ")"
    if tag == "attr":
        return expr[1]
    if tag == "bool":
        return "true" if expr[1] else "false"
    if tag == "cmp":
        return f"{_render_operand(expr[2])} {expr[1]} {_render_operand(expr[3])}"
    if tag == "in":
        return f"{_render_operand(expr[1])} in {{" + ", ".join(_render_operand(v) for v in expr[2]) + "}"
    if tag == "ingroup":
        return f"{_render_operand(expr[1])} in {expr[2]}"
    if tag == "is":
        return f"{_render_operand(expr[1])} is {expr[2]}"
    if tag == "has":
        return f"has {expr[1]}"
    if tag == "member":
        return f"{_render_operand(expr[1])} in {expr[2]}"
    raise ValueError(tag)


def _render_operand(operand: tuple) -> str:
    if operand[0] == "attr":
        return operand[1]
    if operand[0] == "shift":
        _, inner, op, amount, unit = operand
        return f"{_render_operand(inner)} {op} {amount} {unit}{'' if amount == 1 else 's'}"
    kind, value = operand[1], operand[2]
    return value if kind == "name" else _literal(value, kind)


def _literal(value: Any, kind: str) -> str:
    """Policy text for a value of `kind`: strings quoted, names bare."""
    if kind == "string":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value  # a name


# --- random vocabularies and rules (for the equivalence test) --------------------------

_TREE_WORDS = ["alpha", "beta", "gamma", "delta", "kappa"]
_STRINGS = ["a", "b", 'say "hi"', "back\\slash", ""]
_NUMBERS = [0, 1, 5, 17, 18, 18.5, 100, -3]
_OBLIGATIONS = ["audit", "notify", "redact", "mark"]
COMBINES = ["deny-overrides", "permit-overrides", "first-applicable"]


def random_vocab(rng: random.Random) -> Vocab:
    v = Vocab()
    v.actions = [f"act{i}" for i in range(rng.randint(2, 4))]
    names = [f"role{i}" for i in range(rng.randint(3, 7))]
    roles = {}
    for i, name in enumerate(names):
        earlier = names[:i]
        roles[name] = tuple(rng.sample(earlier, min(len(earlier), rng.choice([0, 0, 1, 1, 2]))))
    order = list(roles)
    rng.shuffle(order)  # a role may name a parent declared after it
    v.roles = {r: roles[r] for r in order}
    v.purposes = _random_tree(rng, "p")
    v.categories = _random_tree(rng, "c")
    v.classifications = [f"level{i}" for i in range(rng.randint(2, 4))]
    v.agencies = [f"ag{i}" for i in range(rng.randint(3, 6))]
    v.groups = {}
    for g in range(rng.randint(1, 3)):
        pool = v.agencies + list(v.groups)
        v.groups[f"grp{g}"] = tuple(rng.sample(pool, rng.randint(1, min(3, len(pool)))))
    for role in v.roles:
        if rng.random() < 0.25:
            pool = v.agencies + list(v.groups)
            v.role_at[role] = tuple(rng.sample(pool, rng.randint(1, min(3, len(pool)))))
    v.attributes = [_random_attribute(rng, v, i) for i in range(rng.randint(3, 8))]
    v.agreements = [_random_agreement(rng, v, i) for i in range(rng.randint(1, 3))]
    return v


def _random_tree(rng: random.Random, top: str) -> list[str]:
    """A tree whose leaf words repeat across branches, so some short names are ambiguous."""
    paths: list[str] = []
    for i in range(rng.randint(1, 3)):
        root = f"{top}{i}"
        paths.append(root)
        for word in rng.sample(_TREE_WORDS, rng.randint(0, 3)):
            paths.append(f"{root}.{word}")
            for deeper in rng.sample(_TREE_WORDS, rng.choice([0, 0, 1, 2])):
                paths.append(f"{root}.{word}.{deeper}")
    return paths


_ATTR_KINDS = ["bool", "bool", "number", "string", "date", "date", "one_of", "one_of", "role", "agency",
               "purpose", "category", "classification", "action", "set", "set"]
_SET_OF = ["number", "string", "date", "one_of", "role", "agency", "purpose", "category", "classification",
           "action"]


def _random_attribute(rng: random.Random, v: Vocab, i: int) -> Attr:
    root = rng.choice(["requester", "resource", "context"])
    kind = rng.choice(_ATTR_KINDS)
    element = rng.choice(_SET_OF) if kind == "set" else None
    if kind == "set":  # query plans (engine/plan.py) take sets from the request, not the resource, so far
        root = rng.choice(["requester", "context"])
    choices = tuple(f"ch{j}" for j in range(rng.randint(2, 4))) if "one_of" in (kind, element) else ()
    attr = Attr(f"{root}.x{i}", kind, choices, element=element)
    if rng.random() < 0.5:
        attr.default = random_value(rng, v, attr)
    return attr


def _random_agreement(rng: random.Random, v: Vocab, i: int) -> Agreement:
    pool = v.agencies + list(v.groups)
    a = Agreement(f"dsa{i}")
    if rng.random() < 0.6:
        a.parties = tuple(rng.sample(pool, rng.randint(1, 3)))
    else:
        a.sources = tuple(rng.sample(pool, rng.randint(1, 2)))
        a.recipients = tuple(rng.sample(pool, rng.randint(1, 2)))
    if rng.random() < 0.6:
        start = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 700))
        a.valid = (start, start + dt.timedelta(days=rng.randint(0, 500)))
    return a


def random_value(rng: random.Random, v: Vocab, attr: Attr, written: bool = True) -> Any:
    """A valid value for `attr`; tree values sometimes by a short name when `written`."""
    kind = attr.kind
    if kind == "set":
        member = attr.member()
        return [random_value(rng, v, member, written) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "number":
        return rng.choice(_NUMBERS)
    if kind == "string":
        return rng.choice(_STRINGS)
    if kind == "date":
        return rng.choice(interesting_dates(v))
    if kind == "one_of":
        return rng.choice(attr.choices)
    return value_name(rng, v, kind, rng.choice(values_of(v, kind)), written)


def values_of(v: Vocab, kind: str) -> list[str]:
    return {"action": v.actions, "role": list(v.roles), "agency": v.agencies, "purpose": v.purposes,
            "category": v.categories, "classification": v.classifications}[kind]


def value_name(rng: random.Random, v: Vocab, kind: str, full: str, short: bool = True) -> str:
    if kind in ("purpose", "category") and short:
        return rng.choice(v.names_for(kind, full))
    return full


def interesting_dates(v: Vocab) -> list[dt.date]:
    # Month ends and leap days, where calendar arithmetic clamps.
    days = [dt.date(2023, 6, 1), dt.date(2025, 6, 1), dt.date(2027, 6, 1), dt.date(2024, 2, 29),
            dt.date(2025, 1, 31), dt.date(2024, 3, 31), dt.date(2025, 2, 28)]
    for a in v.agreements:
        if a.valid:
            one = dt.timedelta(days=1)
            days += [a.valid[0] - one, a.valid[0], a.valid[1], a.valid[1] + one]
    return days


def random_model(rng: random.Random, combine: str | None = None) -> PolicyModel:
    v = random_vocab(rng)
    items: list[Item] = []
    for i in range(rng.randint(2, 14)):
        if rng.random() < 0.2:
            items.append(PolicyObligation(rng.choice(["permit", "deny", "any"]), _random_obligation(rng, v)))
        effect = "deny" if rng.random() < 0.3 else "permit"
        # Rule ids may share a name with a purpose: each kind of name has its own namespace.
        rule_id = rng.choice(v.purposes[:1]) if i == 0 and rng.random() < 0.2 else f"rule{i}"
        rule_id = rule_id.split(".")[0]
        items.append(Rule(effect, rule_id, rng.choice([None, f"Rule number {i}"]), _random_clauses(rng, v)))
    return PolicyModel(v, items, combine, files=rng.randint(1, 3))


def _random_clauses(rng: random.Random, v: Vocab) -> list[tuple]:
    clauses = []
    for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4, 5])):
        kind = rng.choice(["action", "role", "role", "purpose", "purpose", "data", "data", "agency", "owner",
                           "under", "when", "when", "unless", "obligation", "obligation"])
        clauses.append(_random_clause(rng, v, kind))
    if rng.random() < 0.7:
        clauses.append(("because", rng.choice(["Act 1998 s.1", 'quoted "law"', "path\\to"])))
    return clauses


def _random_clause(rng: random.Random, v: Vocab, kind: str) -> tuple:
    n = rng.choice([1, 1, 2, 3])
    if kind in ("action", "role"):
        pool = v.actions if kind == "action" else list(v.roles)
        return ("match", kind, tuple(rng.sample(pool, min(n, len(pool)))))
    if kind == "purpose":
        chosen = rng.sample(v.purposes, min(n, len(v.purposes)))
        return ("match", kind, tuple(value_name(rng, v, "purpose", p) for p in chosen))
    if kind in ("agency", "owner"):
        pool = v.agencies + list(v.groups)
        return ("match", kind, tuple(rng.sample(pool, min(n, len(pool)))))
    if kind == "under":
        pool = [a.name for a in v.agreements]
        return ("match", kind, tuple(rng.sample(pool, min(n, len(pool)))))
    if kind == "data":
        chosen = rng.sample(v.categories, min(n, len(v.categories))) if rng.random() < 0.8 else []
        up_to = rng.choice(v.classifications) if not chosen or rng.random() < 0.5 else None
        return ("data", tuple(value_name(rng, v, "category", c) for c in chosen), up_to)
    if kind in ("when", "unless"):
        return (kind, random_expr(rng, v))
    return ("obligation", _random_obligation(rng, v))


def _random_obligation(rng: random.Random, v: Vocab) -> Obligation:
    args = []
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        if rng.random() < 0.5:  # a set is never an obligation argument
            args.append(("attr", rng.choice([a for a in v.all_attributes() if a.kind != "set"]).path))
        else:
            kind = rng.choice(["string", "number", "bool", "date"])
            value = {"string": lambda: rng.choice(_STRINGS), "number": lambda: rng.choice([1, 1.0, 2, 2.5]),
                     "bool": lambda: rng.random() < 0.5, "date": lambda: dt.date(2025, 1, rng.randint(1, 2))}[kind]()
            args.append(("lit", kind, value))
    condition = None
    if rng.random() < 0.4:
        condition = (rng.choice(["when", "unless"]), random_expr(rng, v, depth=1))
    return Obligation(rng.choice(_OBLIGATIONS), tuple(args), condition)


def random_expr(rng: random.Random, v: Vocab, depth: int = 0) -> Expr:
    r = rng.random()
    if depth < 2 and r < 0.3:
        op = rng.choice(["and", "or"])
        return (op, [random_expr(rng, v, depth + 1) for _ in range(rng.randint(2, 3))])
    if depth < 2 and r < 0.4:
        return ("not", random_expr(rng, v, depth + 1))
    if depth < 2 and r < 0.43:
        return ("paren", random_expr(rng, v, depth + 1))
    return _random_atom(rng, v)


def _random_atom(rng: random.Random, v: Vocab) -> Expr:
    attrs = v.all_attributes()
    attr = rng.choice(attrs)
    kind = attr.kind
    left = ("attr", attr.path)
    r = rng.random()
    if r < 0.04:
        return ("bool", rng.random() < 0.5)
    if r < 0.12:
        return ("has", attr.path)
    if kind == "set":
        member = attr.member()
        same = [a for a in attrs if a.kind == attr.element and a.choices == attr.choices]
        if same and rng.random() < 0.5:
            return ("member", ("attr", rng.choice(same).path), attr.path)
        return ("member", _literal_operand(rng, v, member), attr.path)
    if kind == "date" and rng.random() < 0.5:
        return _date_arithmetic(rng, v, left, [a for a in attrs if a.kind == "date"])
    if kind == "bool":
        if rng.random() < 0.6:
            return left
        return ("cmp", rng.choice(["==", "!="]), left, ("lit", "bool", rng.random() < 0.5))
    if kind in ("number", "date", "classification"):
        op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
        same = [a for a in attrs if a.kind == kind and a is not attr]
        if same and rng.random() < 0.3:
            return ("cmp", op, left, ("attr", rng.choice(same).path))
        right = _literal_operand(rng, v, attr)
        return ("cmp", op, right, left) if rng.random() < 0.2 else ("cmp", op, left, right)
    if kind == "agency" and rng.random() < 0.4:
        return ("ingroup", left, rng.choice(list(v.groups)))
    if kind == "string":
        return ("cmp", rng.choice(["==", "!="]), left, ("lit", "string", rng.choice(_STRINGS)))
    if kind in ("role", "purpose", "category", "classification", "agency", "one_of", "action") and r < 0.45:
        node = random_value(rng, v, attr)
        return ("is", left, node)
    if r < 0.7:
        values = {_literal_operand(rng, v, attr) for _ in range(rng.randint(1, 3))}
        return ("in", left, sorted(values, key=str))
    same = [a for a in attrs if a.kind == kind and a is not attr and a.choices == attr.choices]
    right = ("attr", rng.choice(same).path) if same and rng.random() < 0.3 else _literal_operand(rng, v, attr)
    return ("cmp", rng.choice(["==", "!="]), left, right)


_UNITS = ["day", "week", "month", "year"]


def _date_arithmetic(rng: random.Random, v: Vocab, left: tuple, dates: list[Attr]) -> Expr:
    """`a <= b + 28 days`, `a - 1 month > 2025-01-31`: a date moved by durations, compared."""
    def moved(operand: tuple) -> tuple:
        for _ in range(rng.choice([1, 1, 1, 2])):
            operand = ("shift", operand, rng.choice("+-"), rng.choice([0, 1, 1, 2, 6, 12, 28, 30]), rng.choice(_UNITS))
        return operand

    other = ("attr", rng.choice(dates).path) if rng.random() < 0.5 else ("lit", "date", rng.choice(interesting_dates(v)))
    left, other = (moved(left), other) if rng.random() < 0.5 else (left, moved(other))
    return ("cmp", rng.choice(["==", "!=", "<", "<=", ">", ">="]), left, other)


def _literal_operand(rng: random.Random, v: Vocab, attr: Attr) -> tuple:
    value = random_value(rng, v, attr)
    if attr.kind in ("number", "date", "bool", "string"):
        return ("lit", attr.kind, value)
    return ("lit", "name", value)


# --- requests -------------------------------------------------------------------------


def random_request(rng: random.Random, model: PolicyModel, target: Rule | None = None,
                   optional: float = 0.5) -> dict:
    """A valid request; aimed at `target`'s match clauses when given.

    Each declared attribute is given with probability `optional`; the rest are
    omitted (taking their default, or unknown without one).
    """
    v = model.vocab
    values: dict[str, Any] = {
        "requester.role": rng.choice(list(v.roles)),
        "requester.agency": rng.choice(v.agencies),
        "action": rng.choice(v.actions),
        "purpose": rng.choice(v.purposes),
        "resource.category": rng.choice(v.categories),
        "resource.classification": rng.choice(v.classifications),
        "resource.owner": rng.choice(v.agencies),
    }
    if rng.random() < 0.85:
        values["context.date"] = rng.choice(interesting_dates(v))
    if target is not None:
        _aim(rng, v, target, values)
    for path in ("requester.id", "resource.id"):
        if rng.random() < optional:
            values[path] = rng.choice(["u1", "u2", "r1"])
    for attr in v.attributes:
        if rng.random() < optional:
            values[attr.path] = random_value(rng, v, attr, written=False)
    for kind, path in (("purpose", "purpose"), ("category", "resource.category")):
        values[path] = value_name(rng, v, kind, values[path], short=rng.random() < 0.5)
    for attr in v.attributes:
        if attr.kind in ("purpose", "category") and attr.path in values:
            values[attr.path] = value_name(rng, v, attr.kind, values[attr.path], short=rng.random() < 0.5)
    return nest(values)


def _aim(rng: random.Random, v: Vocab, rule: Rule, values: dict[str, Any]) -> None:
    """Make the rule's match and data clauses hold (the last one of a kind wins)."""
    for clause in rule.clauses:
        if clause[0] == "match":
            kind, names = clause[1], clause[2]
            if kind == "action":
                values["action"] = rng.choice(names)
            elif kind == "role":
                values["requester.role"] = rng.choice(v.below("role", rng.choice(names)))
            elif kind == "purpose":
                values["purpose"] = rng.choice(v.below("purpose", rng.choice(names)))
            elif kind in ("agency", "owner"):
                path = "requester.agency" if kind == "agency" else "resource.owner"
                values[path] = rng.choice(sorted(v.group_agencies(rng.choice(names))))
            elif kind == "under":
                name = rng.choice(names)
                _aim_agreement(rng, v, next(a for a in v.agreements if a.name == name), values)
        elif clause[0] == "data":
            if clause[1]:
                values["resource.category"] = rng.choice(v.below("category", rng.choice(clause[1])))
            if clause[2]:
                top = v.classifications.index(clause[2])
                values["resource.classification"] = v.classifications[rng.randint(0, top)]


def _aim_agreement(rng: random.Random, v: Vocab, a: Agreement, values: dict[str, Any]) -> None:
    def member(names):
        return rng.choice(sorted(set().union(*(v.group_agencies(n) for n in names))))

    if a.parties is not None:
        values["requester.agency"], values["resource.owner"] = member(a.parties), member(a.parties)
    else:
        values["resource.owner"], values["requester.agency"] = member(a.sources), member(a.recipients)
    if a.valid is not None:
        values["context.date"] = a.valid[0] + dt.timedelta(days=rng.randint(0, (a.valid[1] - a.valid[0]).days))


def nest(values: dict[str, Any]) -> dict:
    """{"requester.role": "gp"} -> {"requester": {"role": "gp"}}; dates as ISO text."""
    request: dict = {}
    for path, value in values.items():
        *parents, last = path.split(".")
        here = request
        for part in parents:
            here = here.setdefault(part, {})
        if isinstance(value, list):
            value = [item.isoformat() if isinstance(item, dt.date) else item for item in value]
        here[last] = value.isoformat() if isinstance(value, dt.date) else value
    return request


def flatten(request: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in request.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat
