"""Symbols: the declared vocabulary of a policy set, resolved and closed.

Built from the syntax tree without judging it: the checker reports mistakes,
this module only records what was declared (the first declaration of a name
wins) so the checker, the compiler and request validation share one view.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import ast
from engine.errors import did_you_mean
from engine.reuse import Basis
from engine.source import Span


class NameLookupError(LookupError):
    """A name that does not resolve: unknown, or ambiguous in a tree."""

    def __init__(self, message: str, help: str | None = None, candidates: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.help = help
        self.candidates = candidates


@dataclass
class Hierarchy:
    """Roles (several parents allowed), purposes or categories (trees).

    Tree nodes are known by their full dotted path; any unique trailing part
    of the path names them too.
    """

    kind: str
    names: list[str] = field(default_factory=list)
    labels: dict[str, str | None] = field(default_factory=dict)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    ancestors: dict[str, frozenset[str]] = field(default_factory=dict)
    descendants: dict[str, frozenset[str]] = field(default_factory=dict)
    _suffixes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, full: str, label: str | None, parents: tuple[str, ...], span: Span) -> bool:
        """Record a node; False when the name was already declared."""
        if full in self.labels:
            return False
        self.names.append(full)
        self.labels[full] = label
        self.parents[full] = parents
        self.spans[full] = span
        parts = full.split(".")
        for i in range(len(parts)):
            self._suffixes.setdefault(".".join(parts[i:]), []).append(full)
        return True

    def candidates(self, text: str) -> tuple[str, ...]:
        return tuple(self._suffixes.get(text, ()))

    def resolve(self, text: str) -> str:
        """The full name `text` stands for, or NameLookupError.

        A node's own full path always names it, even when a deeper node's
        path ends the same way (`beta` beside `alpha.beta`).
        """
        if text in self.labels:
            return text
        found = self._suffixes.get(text)
        if found and len(found) == 1:
            return found[0]
        if found:
            listed = ", ".join(f"`{c}`" for c in found)
            raise NameLookupError(
                f"`{text}` is ambiguous: it could be {listed}",
                "write the full dotted name",
                tuple(found),
            )
        raise NameLookupError(f"unknown {self.kind} `{text}`", did_you_mean(text, self._suffixes))

    def close(self) -> None:
        """Close the hierarchy: every node's ancestors and descendants, itself included."""
        order = self._parents_first()
        if order is not None:
            # Each node's set is its parents' (or children's) sets joined, made in
            # C by frozenset.union: a long chain of roles costs a copy per link,
            # not a walk up the chain per node.
            ancestors: dict[str, frozenset[str]] = {}
            children: dict[str, list[str]] = {name: [] for name in self.names}
            for name in order:
                declared = [p for p in self.parents.get(name, ()) if p in self.labels]
                ancestors[name] = frozenset((name,)).union(*(ancestors[p] for p in declared))
                for parent in declared:
                    children[parent].append(name)
            descendants: dict[str, frozenset[str]] = {}
            for name in reversed(order):
                descendants[name] = frozenset((name,)).union(*(descendants[c] for c in children[name]))
            self.ancestors = {name: ancestors[name] for name in self.names}
            self.descendants = {name: descendants[name] for name in self.names}
            return
        # Inheritance with a cycle (the checker reports it): walk up from every node.
        self.ancestors = {name: frozenset(self._walk_up(name)) for name in self.names}
        below: dict[str, set[str]] = {name: {name} for name in self.names}
        for name, ups in self.ancestors.items():
            for up in ups:
                below.setdefault(up, {up}).add(name)
        self.descendants = {name: frozenset(below[name]) for name in self.names}

    def _parents_first(self) -> list[str] | None:
        """Every node after its declared parents; None when inheritance has a cycle."""
        waiting = {name: 0 for name in self.names}
        below: dict[str, list[str]] = {name: [] for name in self.names}
        for name in self.names:
            for parent in set(self.parents.get(name, ())):
                if parent in self.labels:
                    waiting[name] += 1
                    below[parent].append(name)
        ready = [name for name in self.names if not waiting[name]]
        order: list[str] = []
        while ready:
            name = ready.pop()
            order.append(name)
            for child in below[name]:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)
        return order if len(order) == len(self.names) else None

    def _walk_up(self, name: str) -> set[str]:
        seen = {name}
        stack = [name]
        while stack:
            for parent in self.parents.get(stack.pop(), ()):
                if parent not in seen and parent in self.labels:
                    seen.add(parent)
                    stack.append(parent)
        return seen


@dataclass(frozen=True)
class Agreement:
    name: str
    title: str | None
    parties: frozenset[str] | None
    sources: frozenset[str] | None
    recipients: frozenset[str] | None
    start: dt.date | None
    end: dt.date | None
    reference: str | None
    span: Span

    def covers(self, requester_agency: str, owner: str, date: dt.date) -> bool:
        """Both agencies share under this agreement on `date`."""
        if self.start is not None and self.end is not None and not (self.start <= date <= self.end):
            return False
        if self.parties is not None:
            return requester_agency in self.parties and owner in self.parties
        return owner in (self.sources or ()) and requester_agency in (self.recipients or ())


# Attribute kinds whose values are declared names.
VOCABULARY_KINDS = ("action", "role", "agency", "purpose", "category", "classification")


@dataclass(frozen=True)
class Attribute:
    """One attribute of the request schema, built-in or declared."""

    path: str
    kind: str  # bool number string date one_of action role agency purpose category classification set
    values: tuple[str, ...] = ()  # the choices of a one_of (or of a set of one_of)
    default: ast.Value | ast.SetLit | None = None
    required: bool = False  # built-ins every request must give
    builtin: bool = False
    span: Span | None = None
    label: str | None = None  # the author's words for it, used in explanations and documents
    element: str | None = None  # a `set of T`: the kind of its members

    @property
    def has_default(self) -> bool:
        """Decided without it when a request leaves it out: it has a default (`context.date`: today)."""
        return self.default is not None or self.path == "context.date"


BUILTIN_ATTRIBUTES = (
    Attribute("requester.role", "role", required=True, builtin=True),
    Attribute("requester.agency", "agency", required=True, builtin=True),
    Attribute("action", "action", required=True, builtin=True),
    Attribute("purpose", "purpose", required=True, builtin=True),
    Attribute("resource.category", "category", required=True, builtin=True),
    Attribute("resource.classification", "classification", required=True, builtin=True),
    Attribute("resource.owner", "agency", required=True, builtin=True),
    Attribute("requester.id", "string", builtin=True),
    Attribute("resource.id", "string", builtin=True),
    Attribute("context.date", "date", builtin=True),
)

ATTRIBUTE_ROOTS = ("requester", "resource", "context")


@dataclass
class Vocabulary:
    """Everything a policy set declares, resolved for lookups."""

    header: ast.PolicyHeader | None = None
    combine: ast.Combine = ast.Combine.DENY_OVERRIDES
    actions: dict[str, str | None] = field(default_factory=dict)
    roles: Hierarchy = field(default_factory=lambda: Hierarchy("role"))
    purposes: Hierarchy = field(default_factory=lambda: Hierarchy("purpose"))
    categories: Hierarchy = field(default_factory=lambda: Hierarchy("category"))
    classifications: dict[str, int] = field(default_factory=dict)  # name -> rank, lowest 0
    agencies: dict[str, str | None] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # expanded to agencies
    agreements: dict[str, Agreement] = field(default_factory=dict)
    attributes: dict[str, Attribute] = field(default_factory=dict)
    rules: list[ast.Rule] = field(default_factory=list)
    policy_obligations: list[ast.PolicyObligation] = field(default_factory=list)
    spans: dict[tuple[str, str], Span] = field(default_factory=dict)  # (namespace, name) -> first declaration
    # Roles whose own `at` or an ancestor's limits where they are held -> the agencies they may be
    # held at (the intersection of every `at` in their ancestry). A role not listed is held anywhere.
    places: dict[str, frozenset[str]] = field(default_factory=dict)
    role_at: dict[str, tuple[ast.Name, ...]] = field(default_factory=dict)  # each role's own `at`, as written
    # The declarations it was built from, but the rules: what a rule's kept results rest on
    # (engine/reuse.py). None for a vocabulary made by hand, whose results are never kept.
    basis: Basis | None = field(default=None, compare=False, repr=False)

    def holds(self, role: str, agency: str) -> bool:
        """A requester with `role` may be at `agency` (LANGUAGE.md section 2)."""
        places = self.places.get(role)
        return places is None or agency in places

    def hierarchy(self, kind: str) -> Hierarchy | None:
        return {"role": self.roles, "purpose": self.purposes, "category": self.categories}.get(kind)

    def tree(self, kind: str) -> Hierarchy:
        """The hierarchy of `kind`, which must be role, purpose or category."""
        tree = self.hierarchy(kind)
        if tree is None:
            raise KeyError(f"{kind} values form no hierarchy")
        return tree

    def agencies_named(self, name: str) -> frozenset[str]:
        """An agency as a one-element set, or a group's agencies; NameLookupError otherwise."""
        if name in self.agencies:
            return frozenset((name,))
        if name in self.groups:
            return self.groups[name]
        known = list(self.agencies) + list(self.groups)
        raise NameLookupError(f"unknown agency or group `{name}`", did_you_mean(name, known))

    def resolve(self, kind: str, text: str) -> str:
        """The declared value of a vocabulary kind that `text` names."""
        tree = self.hierarchy(kind)
        if tree is not None:
            return tree.resolve(text)
        table = self._flat(kind)
        if text in table:
            return text
        raise NameLookupError(f"unknown {kind} `{text}`", did_you_mean(text, table))

    def values_of(self, kind: str) -> list[str]:
        tree = self.hierarchy(kind)
        if tree is not None:
            return list(tree.names)
        return list(self._flat(kind))

    def _flat(self, kind: str) -> Mapping[str, object]:
        """The declared values of a kind without a hierarchy: actions, agencies or classifications."""
        tables: dict[str, Mapping[str, object]] = {
            "action": self.actions, "agency": self.agencies, "classification": self.classifications}
        return tables[kind]


def build_vocabulary(policy_set: ast.PolicySet) -> Vocabulary:
    """Collect and close every declaration of the set (first one of a name wins)."""
    vocab = Vocabulary()
    for attribute in BUILTIN_ATTRIBUTES:
        vocab.attributes[attribute.path] = attribute
    group_decls: list[ast.GroupDecl] = []
    agreement_decls: list[ast.AgreementDecl] = []
    others: list[ast.Declaration] = []
    for decl in policy_set.declarations():
        if not isinstance(decl, ast.Rule):
            others.append(decl)
        match decl:
            case ast.PolicyHeader():
                if vocab.header is None:
                    vocab.header = decl
                    vocab.combine = decl.combine or ast.Combine.DENY_OVERRIDES
            case ast.ActionsDecl():
                _add_flat(vocab, "action", vocab.actions, decl.items)
            case ast.AgenciesDecl():
                _add_flat(vocab, "agency", vocab.agencies, decl.items)
            case ast.ClassificationsDecl():
                for item in decl.levels:
                    if item.name.text not in vocab.classifications:
                        vocab.classifications[item.name.text] = len(vocab.classifications)
                        vocab.spans.setdefault(("classification", item.name.text), item.name.span)
            case ast.RolesDecl():
                for role in decl.items:
                    parents = tuple(p.text for p in role.parents)
                    if vocab.roles.add(role.name.text, role.label, parents, role.name.span) and role.places:
                        vocab.role_at[role.name.text] = role.places
            case ast.PurposesDecl():
                _add_tree(vocab.purposes, decl.nodes, "")
            case ast.CategoriesDecl():
                _add_tree(vocab.categories, decl.nodes, "")
            case ast.GroupDecl():
                group_decls.append(decl)
            case ast.AttributesDecl():
                for declared in decl.items:
                    vocab.attributes.setdefault(declared.path.text, _attribute(declared))
            case ast.AgreementDecl():
                agreement_decls.append(decl)
            case ast.Rule():
                vocab.rules.append(decl)
            case ast.PolicyObligation():
                vocab.policy_obligations.append(decl)
    vocab.roles.close()
    vocab.purposes.close()
    vocab.categories.close()
    _expand_groups(vocab, group_decls)
    _role_places(vocab)
    for decl in agreement_decls:
        if decl.name.text not in vocab.agreements:
            vocab.agreements[decl.name.text] = _agreement(vocab, decl)
    vocab.basis = Basis(tuple(others))
    return vocab


def _add_flat(vocab: Vocabulary, kind: str, table: dict[str, Any], items: Iterable[ast.VocabItem]) -> None:
    for item in items:
        if item.name.text not in table:
            table[item.name.text] = item.label
            vocab.spans.setdefault((kind, item.name.text), item.name.span)


def _add_tree(tree: Hierarchy, nodes: Iterable[ast.TreeNode], prefix: str) -> None:
    for node in nodes:
        full = prefix + node.name.text
        parent = (prefix[:-1],) if prefix else ()
        tree.add(full, node.label, parent, node.name.span)
        _add_tree(tree, node.children, full + ".")


def _attribute(decl: ast.AttributeDecl) -> Attribute:
    element = decl.type.element
    values = tuple(v.name.text for v in (element or decl.type).values)
    return Attribute(decl.path.text, decl.type.kind, values, decl.default, span=decl.path.span, label=decl.label,
                     element=element.kind if element is not None else None)


def _role_places(vocab: Vocabulary) -> None:
    """Where each role may be held: every `at` in its ancestry must allow the agency."""
    own = {role: _agency_set(vocab, names) or frozenset() for role, names in vocab.role_at.items()}
    for role in vocab.roles.names:
        limits = [own[r] for r in vocab.roles.ancestors.get(role, ()) if r in own]
        if limits:
            vocab.places[role] = frozenset.intersection(*limits)


def _expand_groups(vocab: Vocabulary, decls: list[ast.GroupDecl]) -> None:
    members: dict[str, list[str]] = {}
    for decl in decls:
        members.setdefault(decl.name.text, [m.text for m in decl.members])

    def expand(name: str) -> frozenset[str]:
        # A walk with a list of groups still to open, not recursion: groups nested a
        # thousand deep must not exhaust the stack. Each group is opened once (cycles
        # are the checker's to report).
        found: set[str] = set()
        opened = {name}
        waiting = [name]
        while waiting:
            for member in members.get(waiting.pop(), ()):
                if member in vocab.agencies:
                    found.add(member)
                elif member in members and member not in opened:
                    opened.add(member)
                    waiting.append(member)
        return frozenset(found)

    for name in members:
        vocab.groups[name] = expand(name)


def _agency_set(vocab: Vocabulary, names: tuple[ast.Name, ...] | None) -> frozenset[str] | None:
    if names is None:
        return None
    found: set[str] = set()
    for name in names:
        try:
            found |= vocab.agencies_named(name.text)
        except NameLookupError:
            pass
    return frozenset(found)


def _agreement(vocab: Vocabulary, decl: ast.AgreementDecl) -> Agreement:
    valid = decl.valid
    return Agreement(
        decl.name.text,
        decl.title,
        _agency_set(vocab, decl.parties),
        _agency_set(vocab, decl.sources),
        _agency_set(vocab, decl.recipients),
        valid.start.value if valid else None,
        valid.end.value if valid else None,
        decl.reference,
        decl.span,
    )
