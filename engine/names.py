"""What a policy set names, for the applications that call it.

`vocabulary_listing(policy)` lists names, not counts: roles with their labels
and parents, agencies and groups, the purpose and category trees,
classifications lowest first, attributes with their types and defaults, and
obligations with their arguments and where they come from. Apps use it to map
an identity provider's groups to roles, build pick-lists, and check that they
handle every obligation (integrations/fastapi.py). The service answers it at
`GET /policy/vocabulary`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from engine import ast
from engine.symbols import Hierarchy

if TYPE_CHECKING:
    from engine.policy import Policy


def vocabulary_listing(policy: Policy) -> dict[str, Any]:
    """Every name the set declares, in declaration order, as plain JSON data."""
    vocab = policy.vocabulary
    return {
        "policy_version": policy.version,
        "actions": [{"name": n, "label": label} for n, label in vocab.actions.items()],
        "roles": _roles(vocab),
        "purposes": _tree(vocab.purposes),
        "categories": _tree(vocab.categories),
        "classifications": [{"name": n, "rank": r} for n, r in sorted(vocab.classifications.items(),
                                                                      key=lambda item: item[1])],
        "agencies": [{"name": n, "label": label} for n, label in vocab.agencies.items()],
        "groups": [{"name": n, "agencies": sorted(members)} for n, members in vocab.groups.items()],
        "attributes": [_attribute(a) for a in vocab.attributes.values()],
        "obligations": obligation_listing(policy),
    }


def obligation_names(policy: Policy) -> list[str]:
    """Every obligation name the set can put on a decision, in set order."""
    return [o["name"] for o in obligation_listing(policy)]


def obligation_listing(policy: Policy) -> list[dict[str, Any]]:
    """Each obligation name once: the arguments each use gives, and the rules (or `on` outcomes) using it."""
    found: dict[str, dict[str, Any]] = {}

    def add(clause: ast.ObligationClause, source: str) -> None:
        entry = found.setdefault(clause.name, {"name": clause.name, "uses": []})
        entry["uses"].append({"from": source, "args": [_argument(a) for a in clause.args],
                              "conditional": clause.condition is not None})

    declarations: Any = policy.policy_set.declarations  # the syntax tree is not fully typed
    for declaration in declarations():
        if isinstance(declaration, ast.Rule):
            for clause in declaration.clauses:
                if isinstance(clause, ast.ObligationClause):
                    add(clause, f"rule {declaration.id.text}")
        elif isinstance(declaration, ast.PolicyObligation):
            add(declaration.obligation, f"on {declaration.outcome.value}")
    return list(found.values())


def _roles(vocab: Any) -> list[dict[str, Any]]:
    """Roles as a tree; a role held only at some agencies lists them (`held_at`, after every `at`
    of its family), so an identity provider's groups can be mapped knowing where each role occurs."""
    found = _tree(vocab.roles)
    for entry in found:
        if entry["name"] in vocab.places:
            entry["held_at"] = sorted(vocab.places[entry["name"]])
    return found


def _tree(tree: Hierarchy) -> list[dict[str, Any]]:
    return [{"name": n, "label": tree.labels.get(n), "parents": list(tree.parents.get(n, ()))} for n in tree.names]


def _attribute(attribute: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"path": attribute.path, "type": attribute.kind, "label": attribute.label,
                            "required": attribute.required}
    if attribute.element is not None:
        data["of"] = attribute.element  # a set: its members' type (given as a list)
    if attribute.values:
        data["values"] = list(attribute.values)
    if attribute.default is not None:
        data["default"] = _argument(attribute.default)
    return data


def _argument(value: Any) -> Any:
    """An argument or default as written: a name or attribute path as text, a literal as its value."""
    if isinstance(value, ast.Name):
        return value.text
    if isinstance(value, ast.SetLit):
        return [_argument(v) for v in value.values]
    found = value.value
    return found.isoformat() if isinstance(found, dt.date) else found
