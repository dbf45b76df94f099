"""Realistic generated policy sets for the decision benchmark, and their Cedar translation.

    python bench/generate.py RULES OUT_DIR [--seed S]    # write a set to look at

A set of N rules looks like a regional partnership's: agencies of a few kinds
(councils, police, NHS trusts, GP practices, schools, housing), groups of them,
information sharing agreements over agency subsets (two-way and one-way, most
current, some expired), and rules that each name actions, roles, purposes,
data categories up to a classification, an agreement, and sometimes a
condition on the request's facts; a few deny rules. Requests are aimed at rules
so that about 40% are permitted and many of the rest are near misses.

The model types, rendering and request helpers live in tests/policygen.py,
shared with the equivalence test. `to_cedar()` translates a set (combined
deny-overrides, which is Cedar's forbid-overrides) to Cedar policies, entities
and requests; every feature the generator uses here has a Cedar translation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from policygen import (  # noqa: E402
    Agreement, Attr, Obligation, PolicyModel, PolicyObligation, Rule, Vocab, flatten, nest, random_request,
    render_expr,
)

TODAY = dt.date(2025, 6, 1)

ROLES = {
    "social_worker": (), "senior_social_worker": ("social_worker",), "team_manager": ("senior_social_worker",),
    "adult_social_worker": (), "safeguarding_adults_lead": ("adult_social_worker",),
    "police_officer": (), "detective": ("police_officer",), "gp": (), "practice_nurse": (),
    "named_nurse": ("practice_nurse",), "hospital_clinician": (), "school_dsl": (), "teacher": (),
    "probation_officer": (), "mappa_coordinator": ("probation_officer",),
    "mash_lead": ("team_manager", "detective", "named_nurse"), "caldicott_guardian": (),
    "housing_officer": (), "data_analyst": (), "communications_officer": (),
}
PURPOSES = ["safeguarding", "safeguarding.children", "safeguarding.children.early_help",
            "safeguarding.children.child_protection", "safeguarding.adults", "direct_care", "crime_prevention",
            "crime_prevention.mappa", "crime_prevention.domestic_abuse", "service_planning", "research",
            "marketing"]
CATEGORIES = ["special_category", "special_category.health", "special_category.ethnicity",
              "special_category.religion", "criminal_offence", "criminal_offence.criminal_record",
              "criminal_offence.police_intelligence", "criminal_offence.incident_report", "social_care",
              "social_care.child_case_file", "social_care.adult_case_file", "education", "housing",
              "contact_details"]
CLASSIFICATIONS = ["public", "official", "official_sensitive", "secret"]
ACTIONS = ["view", "share", "export", "amend"]
AGENCY_KINDS = ["council", "police", "nhs_trust", "gp", "school", "housing", "probation"]
ATTRIBUTES = [
    Attr("requester.vetted", "bool", default=False),
    Attr("requester.clearance", "classification", default="official_sensitive"),
    Attr("context.emergency", "bool", default=False),
    Attr("context.risk_of_harm", "bool", default=False),
    Attr("context.consent", "one_of", ("given", "refused", "not_sought"), default="not_sought"),
    Attr("context.records_requested", "number", default=1),
    Attr("resource.subject_age", "number"),
    Attr("resource.lacks_capacity", "bool"),
]

# Conditions rules draw from: (expression, how often).
CONDITIONS = [
    (("or", [("attr", "context.risk_of_harm"), ("cmp", "==", ("attr", "context.consent"), ("lit", "name", "given"))]), 4),
    (("cmp", "==", ("attr", "context.consent"), ("lit", "name", "given")), 3),
    (("cmp", "<", ("attr", "resource.subject_age"), ("lit", "number", 18)), 2),
    (("attr", "requester.vetted"), 2),
    (("or", [("attr", "context.emergency"), ("attr", "resource.lacks_capacity")]), 1),
    (("and", [("not", ("attr", "context.emergency")),
              ("cmp", "<=", ("attr", "context.records_requested"), ("lit", "number", 50))]), 1),
]


def realistic_vocab(rng: random.Random, rules: int) -> Vocab:
    v = Vocab(actions=list(ACTIONS), roles=dict(ROLES), purposes=list(PURPOSES), categories=list(CATEGORIES),
              classifications=list(CLASSIFICATIONS), attributes=list(ATTRIBUTES))
    count = 12 + rules // 25
    v.agencies = [f"{AGENCY_KINDS[i % len(AGENCY_KINDS)]}_{i}" for i in range(count)]
    for kind in AGENCY_KINDS:
        v.groups[f"all_{kind}"] = tuple(a for a in v.agencies if a.startswith(kind + "_"))
    # Local partnerships: overlapping areas of about twelve agencies each.
    for area in range(max(2, count // 10)):
        v.groups[f"area_{area}"] = tuple(rng.sample(v.agencies, min(12, len(v.agencies))))
    v.groups["statutory_partners"] = ("all_council", "all_police", "all_nhs_trust")
    for i in range(max(3, rules // 8)):
        v.agreements.append(_agreement(rng, v, i))
    return v


def _agreement(rng: random.Random, v: Vocab, i: int) -> Agreement:
    areas = [g for g in v.groups if g.startswith("area_")]
    start = dt.date(2023, 4, 1) + dt.timedelta(days=rng.randint(0, 700))
    # Most agreements are current on TODAY; about one in eight has expired.
    end = TODAY + dt.timedelta(days=rng.randint(30, 1200)) if rng.random() < 0.88 else TODAY - dt.timedelta(days=10)
    valid = (min(start, end), end) if rng.random() < 0.8 else None
    if rng.random() < 0.75:
        parties = tuple(rng.sample(v.agencies, rng.randint(3, 8)))
        if rng.random() < 0.4:
            parties = (rng.choice(areas),) + parties[:2]
        return Agreement(f"isa_{i}", parties=parties, valid=valid)
    sources = (rng.choice([g for g in v.groups if g.startswith("all_")]),)
    return Agreement(f"protocol_{i}", sources=sources, recipients=tuple(rng.sample(v.agencies, rng.randint(1, 3))),
                     valid=valid)


def realistic_model(rules: int, seed: int = 1) -> PolicyModel:
    """A deny-overrides set of `rules` rules (about 3% deny) and four policy-wide obligations."""
    rng = random.Random(seed)
    v = realistic_vocab(rng, rules)
    items: list = [
        PolicyObligation("any", Obligation("record_decision", (), ("when", ("in", ("attr", "action"), [
            ("lit", "name", "share"), ("lit", "name", "export")])))),
        PolicyObligation("permit", Obligation("apply_marking", (("attr", "resource.classification"),), ("when", (
            "cmp", ">=", ("attr", "resource.classification"), ("lit", "name", "official_sensitive"))))),
        PolicyObligation("deny", Obligation("offer_escalation", ())),
    ]
    denies = _deny_rules(v)
    for i in range(rules - len(denies)):
        items.append(_permit(rng, v, i))
        if i % 97 == 50 and denies:
            items.append(denies.pop())
    items.extend(denies)
    return PolicyModel(v, items, "deny-overrides", files=max(1, rules // 2000))


def _permit(rng: random.Random, v: Vocab, i: int) -> Rule:
    purposes = rng.sample([p for p in v.purposes if p != "marketing"], rng.choice([1, 1, 2]))
    clauses: list[tuple] = [
        ("match", "action", tuple(rng.sample(v.actions[:3], rng.choice([1, 2, 2])))),
        ("match", "role", tuple(rng.sample(list(v.roles), rng.randint(1, 3)))),
        ("match", "purpose", tuple(p.rsplit(".", 1)[-1] if rng.random() < 0.5 else p for p in purposes)),
        ("data", tuple(c.rsplit(".", 1)[-1] for c in rng.sample(v.categories, rng.randint(1, 3))),
         rng.choice(v.classifications[1:3])),
    ]
    agreement = rng.choice(v.agreements)
    clauses.append(("match", "under", (agreement.name,)))
    if rng.random() < 0.5:
        clauses.append(("when", rng.choices([c for c, _ in CONDITIONS], [w for _, w in CONDITIONS])[0]))
    clauses.append(("obligation", Obligation("audit_access")))
    if rng.random() < 0.3:
        clauses.append(("obligation", Obligation("redact", (("lit", "string", "nhs_number"),),
                                                 ("unless", ("is", ("attr", "requester.role"), "gp")))))
    clauses.append(("because", f"Information sharing agreement {agreement.name}, clause {i % 12 + 1}"))
    return Rule("permit", f"share_{i}", f"Sharing rule {i}", clauses)


def _deny_rules(v: Vocab) -> list[Rule]:
    because = ("because", "Partnership prohibition")
    return [
        Rule("deny", "no_marketing", "Never for marketing", [("match", "purpose", ("marketing",)), because]),
        Rule("deny", "above_clearance", "Not above clearance", [
            ("when", ("cmp", ">", ("attr", "resource.classification"), ("attr", "requester.clearance"))), because]),
        Rule("deny", "no_export_of_secret", "Secret is never exported", [
            ("match", "action", ("export",)),
            ("when", ("cmp", ">", ("attr", "resource.classification"), ("lit", "name", "official_sensitive"))),
            because]),
        Rule("deny", "unvetted_intelligence", "Intelligence only to vetted staff", [
            ("data", ("police_intelligence",), None), ("unless", ("attr", "requester.vetted")), because]),
        Rule("deny", "bulk_export", "Bulk export needs review", [
            ("match", "action", ("export",)),
            ("when", ("cmp", ">", ("attr", "context.records_requested"), ("lit", "number", 500))), because]),
        Rule("deny", "adult_capacity", "Adults lacking capacity need a best-interests route", [
            ("match", "purpose", ("research",)),
            ("when", ("and", [("cmp", ">=", ("attr", "resource.subject_age"), ("lit", "number", 18)),
                              ("attr", "resource.lacks_capacity")])), because]),
    ]


def request_mix(model: PolicyModel, count: int, seed: int = 2) -> list[dict]:
    """Requests on TODAY: four in five aimed at a permit rule, a third of those nudged into a near miss."""
    rng = random.Random(seed)
    permits = [r for r in model.rules if r.effect == "permit"]
    found = []
    for _ in range(count):
        target = rng.choice(permits) if rng.random() < 0.8 else None
        request = random_request(rng, model, target, optional=0.4)
        flat = flatten(request)
        flat["context.date"] = TODAY.isoformat()
        flat.pop("requester.id", None)
        flat.pop("resource.id", None)
        for attr in ("requester.clearance", "context.consent", "context.records_requested"):
            if attr in flat:  # mostly everyday values, so conditions and denies are realistic
                flat[attr] = {"requester.clearance": "official_sensitive", "context.consent": rng.choice(
                    ["given", "given", "not_sought", "refused"]), "context.records_requested": rng.choice(
                    [1, 1, 5, 40, 800])}[attr]
        if "resource.subject_age" in flat:
            flat["resource.subject_age"] = rng.choice([3, 9, 15, 17, 18, 34, 70])
        if target is not None and rng.random() < 0.33:
            _nudge(rng, model.vocab, flat)
        found.append(nest(flat))
    return found


def _nudge(rng: random.Random, v: Vocab, flat: dict) -> None:
    """Change one thing, as a practitioner who is nearly right would."""
    which = rng.choice(["action", "requester.role", "purpose", "resource.classification", "resource.owner"])
    pool = {"action": v.actions, "requester.role": list(v.roles), "purpose": v.purposes,
            "resource.classification": v.classifications, "resource.owner": v.agencies}[which]
    flat[which] = rng.choice(pool)


# --- Cedar ------------------------------------------------------------------------


def to_cedar(model: PolicyModel) -> tuple[str, list[dict]]:
    """Cedar policy text and entities for a deny-overrides set (forbid overrides permit in Cedar).

    The principal is the requester's Role entity (role parents as entity parents);
    the resource is its Category entity (the category tree as parents); the
    action an Action entity. The purpose, agencies and owner are entity references
    in the context (groups as Agency parents), the classification a Long rank, the
    date a Long YYYYMMDD. Three-valued conditions become two Cedar expressions:
    true-for-sure (permits) and possibly-true (forbids), with `has` for omitted facts.
    """
    assert model.combine in (None, "deny-overrides"), "Cedar combines as deny-overrides only"
    v = model.vocab
    policies = [_cedar_rule(v, r) for r in model.rules]
    return "\n".join(policies), _cedar_entities(v)


def _uid(kind: str, name: str) -> str:
    return f'{kind}::"{name}"'


def _cedar_entities(v: Vocab) -> list[dict]:
    def entity(kind: str, name: str, parents: list[tuple[str, str]]) -> dict:
        return {"uid": {"type": kind, "id": name}, "attrs": {},
                "parents": [{"type": k, "id": n} for k, n in parents]}

    found = [entity("Role", r, [("Role", p) for p in ps]) for r, ps in v.roles.items()]
    found += [entity("Action", a, []) for a in v.actions]
    for kind, tree in (("Purpose", v.purposes), ("Category", v.categories)):
        found += [entity(kind, n, [(kind, n.rsplit(".", 1)[0])] if "." in n else []) for n in tree]
    member_of: dict[str, list[str]] = {}
    for group, members in v.groups.items():
        for m in members:
            member_of.setdefault(m, []).append(group)
    found += [entity("Agency", a, [("Group", g) for g in member_of.get(a, [])]) for a in v.agencies]
    found += [entity("Group", g, [("Group", p) for p in member_of.get(g, [])]) for g in v.groups]
    return found


def _agencies(v: Vocab, names) -> str:
    return "[" + ", ".join(_uid("Group" if n in v.groups else "Agency", n) for n in names) + "]"


def _cedar_rule(v: Vocab, rule: Rule) -> str:
    """One rule as one Cedar policy: actions, a single role and a single category in
    the scope (where Cedar looks first), every other clause a conjunct of `when`."""
    deny = rule.effect == "deny"
    scope = {"principal": "principal", "action": "action", "resource": "resource"}
    conjuncts = []
    for clause in rule.clauses:
        tag = clause[0]
        if tag == "match" and clause[1] == "action" and scope["action"] == "action":
            scope["action"] = "action in [" + ", ".join(_uid("Action", a) for a in clause[2]) + "]"
        elif tag == "match" and clause[1] == "role" and len(clause[2]) == 1 and scope["principal"] == "principal":
            scope["principal"] = f"principal in {_uid('Role', clause[2][0])}"
        elif tag == "match":
            conjuncts.append(_cedar_match(v, clause[1], clause[2]))
        elif tag == "data":
            if len(clause[1]) == 1 and scope["resource"] == "resource":
                scope["resource"] = f"resource in {_uid('Category', v.full('category', clause[1][0]))}"
            elif clause[1]:
                cats = ", ".join(_uid("Category", v.full("category", c)) for c in clause[1])
                conjuncts.append(f"resource in [{cats}]")
            if clause[2]:
                conjuncts.append(f"context.classification <= {v.classifications.index(clause[2])}")
        elif tag in ("when", "unless"):
            sure, possible = _cedar_expr(v, clause[1])
            if tag == "when":
                conjuncts.append(possible if deny else sure)
            else:
                conjuncts.append(f"!({sure})" if deny else f"!({possible})")
    body = " && ".join(f"({c})" for c in conjuncts) or "true"
    effect = "forbid" if deny else "permit"
    head = ", ".join(scope.values())
    return f'@id("{rule.id}")\n{effect}({head}) when {{ {body} }};'


def _cedar_match(v: Vocab, kind: str, names: tuple[str, ...]) -> str:
    if kind == "action":
        return "action in [" + ", ".join(_uid("Action", a) for a in names) + "]"
    if kind == "role":
        return "principal in [" + ", ".join(_uid("Role", r) for r in names) + "]"
    if kind == "purpose":
        return "context.purpose in [" + ", ".join(_uid("Purpose", v.full("purpose", p)) for p in names) + "]"
    if kind == "agency":
        return f"context.agency in {_agencies(v, names)}"
    if kind == "owner":
        return f"context.owner in {_agencies(v, names)}"
    if kind == "under":
        return " || ".join(f"({_cedar_agreement(v, next(a for a in v.agreements if a.name == n))})" for n in names)
    raise ValueError(kind)


def _cedar_agreement(v: Vocab, a: Agreement) -> str:
    if a.parties is not None:
        text = f"context.agency in {_agencies(v, a.parties)} && context.owner in {_agencies(v, a.parties)}"
    else:
        text = f"context.owner in {_agencies(v, a.sources)} && context.agency in {_agencies(v, a.recipients)}"
    if a.valid is not None:
        text += f" && context.date >= {_day(a.valid[0])} && context.date <= {_day(a.valid[1])}"
    return text


def _day(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


# Built-in attributes are always in a request; the others may be omitted.
_BUILTIN_CONTEXT = {"requester.role": "principal", "action": "action", "resource.category": "resource",
                    "purpose": "context.purpose", "requester.agency": "context.agency",
                    "resource.owner": "context.owner", "resource.classification": "context.classification"}


def _cedar_expr(v: Vocab, expr: tuple) -> tuple[str, str]:
    """(true for sure, possibly true) for an expression the realistic generator uses."""
    tag = expr[0]
    if tag in ("and", "or"):
        parts = [_cedar_expr(v, e) for e in expr[1]]
        glue = " && " if tag == "and" else " || "
        return (glue.join(f"({s})" for s, _ in parts), glue.join(f"({p})" for _, p in parts))
    if tag == "not":
        sure, possible = _cedar_expr(v, expr[1])
        return f"!({possible})", f"!({sure})"
    needed = sorted(_attributes_in(expr) - set(_BUILTIN_CONTEXT))
    atom = _cedar_atom(v, expr)
    missing = [f"context has {_context_key(p)}" for p in needed if v.attribute(p).default is None]
    if not missing:
        return atom, atom
    given = " && ".join(missing)
    return f"{given} && ({atom})", f"!({given}) || ({atom})"


def _attributes_in(expr: tuple) -> set[str]:
    return {o[1] for o in expr[1:] if isinstance(o, tuple) and o and o[0] == "attr"} | (
        {expr[1]} if expr[0] == "attr" else set())


def _context_key(path: str) -> str:
    return path.replace(".", "_")


def _cedar_operand(v: Vocab, operand: tuple, kind: str) -> str:
    if operand[0] == "attr":
        path = operand[1]
        return _BUILTIN_CONTEXT.get(path, f"context.{_context_key(path)}")
    value = operand[2]
    if kind == "classification":
        return str(v.classifications.index(value))
    if kind == "one_of":
        return json.dumps(value)
    return json.dumps(value)


def _cedar_atom(v: Vocab, expr: tuple) -> str:
    tag = expr[0]
    if tag == "attr":
        return _cedar_operand(v, expr, "bool")
    if tag == "cmp":
        kind = v.attribute(expr[2][1]).kind if expr[2][0] == "attr" else v.attribute(expr[3][1]).kind
        return f"{_cedar_operand(v, expr[2], kind)} {expr[1]} {_cedar_operand(v, expr[3], kind)}"
    if tag == "in":
        kind = v.attribute(expr[1][1]).kind
        if kind == "action":
            return "action in [" + ", ".join(_uid("Action", o[2]) for o in expr[2]) + "]"
        return "[" + ", ".join(_cedar_operand(v, o, kind) for o in expr[2]) + f"].contains({_cedar_operand(v, expr[1], kind)})"
    if tag == "is" and expr[1] == ("attr", "requester.role"):
        return f"principal in {_uid('Role', expr[2])}"
    raise ValueError(f"no Cedar translation for {render_expr(expr)}")


def cedar_request(v: Vocab, request: dict) -> dict:
    """Our request as a Cedar request: defaults filled, names as entities, ranks and days as Longs."""
    flat = flatten(request)
    for attr in v.attributes:
        if attr.path not in flat and attr.default is not None:
            flat[attr.path] = attr.default
    context: dict[str, Any] = {
        "purpose": {"__entity": {"type": "Purpose", "id": v.full("purpose", flat["purpose"])}},
        "agency": {"__entity": {"type": "Agency", "id": flat["requester.agency"]}},
        "owner": {"__entity": {"type": "Agency", "id": flat["resource.owner"]}},
        "classification": v.classifications.index(flat["resource.classification"]),
        "date": _day(dt.date.fromisoformat(flat["context.date"])),
    }
    for attr in v.attributes:
        if attr.path in flat:
            value = flat[attr.path]
            context[_context_key(attr.path)] = (v.classifications.index(value) if attr.kind == "classification"
                                                else value)
    return {
        "principal": {"type": "Role", "id": flat["requester.role"]},
        "action": {"type": "Action", "id": flat["action"]},
        "resource": {"type": "Category", "id": v.full("category", flat["resource.category"])},
        "context": context,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rules", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    realistic_model(args.rules, args.seed).write(args.out)


if __name__ == "__main__":
    main()
