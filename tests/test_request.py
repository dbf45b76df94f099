import datetime as dt
import functools

import pytest

from conftest import DELETE, policy, request, rule
from engine.errors import RequestError
from engine.request import WORDS, parse_date


@functools.cache
def the_policy():
    return policy(rule("action view") + "agreement x {\n  parties council\n}\n"
                  + "attributes {\n  context.level classification\n}\n")


# (changes, field, message, help)
INVALID = [
    ("unknown role", {"requester.role": "socal_worker"}, "requester.role", "unknown role `socal_worker`",
     "did you mean `social_worker`?"),
    ("unknown agency", {"requester.agency": "councill"}, "requester.agency", "unknown agency `councill`",
     "did you mean `council`?"),
    ("unknown owner", {"resource.owner": "nowhere"}, "resource.owner", "unknown agency `nowhere`", None),
    ("a group is not an agency", {"resource.owner": "partners"}, "resource.owner", "unknown agency `partners`",
     None),
    ("unknown action", {"action": "veiw"}, "action", "unknown action `veiw`", "did you mean `view`?"),
    ("unknown purpose", {"purpose": "safeguarding.kids"}, "purpose", "unknown purpose `safeguarding.kids`",
     "did you mean `safeguarding.adults`?"),
    ("unknown category", {"resource.category": "heath"}, "resource.category", "unknown category `heath`",
     "did you mean `health`?"),
    ("unknown classification", {"resource.classification": "top_secret"}, "resource.classification",
     "unknown classification `top_secret`", "did you mean `secret`?"),
    ("a name of another kind", {"purpose": "health"}, "purpose", "unknown purpose `health`", None),
    ("name as a number", {"requester.role": 3}, "requester.role", "expected a role name, got 3", None),
    ("name as a list", {"action": ["view"]}, "action", "expected an action name, got a list", None),
    ("one of: unknown choice", {"context.consent": "givn"}, "context.consent",
     'expected one of given, refused, not_sought, got "givn"', "did you mean `given`?"),
    ("one of: not text", {"context.consent": True}, "context.consent",
     "expected one of given, refused, not_sought, got true", None),
    ("bool as text", {"context.risk_of_harm": "yes"}, "context.risk_of_harm", 'expected true or false, got "yes"',
     None),
    ("bool as a number", {"context.risk_of_harm": 1}, "context.risk_of_harm", "expected true or false, got 1",
     None),
    ("number as text", {"resource.subject_age": "12"}, "resource.subject_age", 'expected a number, got "12"',
     None),
    ("number as a bool", {"resource.subject_age": True}, "resource.subject_age", "expected a number, got true",
     None),
    ("number not finite", {"resource.subject_age": float("nan")}, "resource.subject_age",
     "expected a number, got nan", None),
    ("string as a number", {"requester.team": 5}, "requester.team", "expected a string, got 5", None),
    ("date in another form", {"context.date": "01/06/2025"}, "context.date",
     'expected a date like 2025-06-01, got "01/06/2025"', None),
    ("date that does not exist", {"resource.recorded_on": "2025-02-30"}, "resource.recorded_on",
     'expected a date like 2025-06-01, got "2025-02-30"', None),
    ("date as a number", {"context.date": 20250601}, "context.date", "expected a date like 2025-06-01, got 20250601",
     None),
    ("declared role attribute", {"context.approved_by": "nobody"}, "context.approved_by", "unknown role `nobody`",
     None),
    ("declared classification attribute", {"context.level": "hush"}, "context.level",
     "unknown classification `hush`", None),
    ("undeclared attribute", {"context.qqq": True}, "context.qqq", "is not a declared attribute",
     "declare it in an `attributes` block"),
    ("undeclared attribute, close to one", {"requester.vetted_": True}, "requester.vetted_",
     "is not a declared attribute", "did you mean `requester.vetted`?"),
    ("unknown top-level field", {"purpose_": "x"}, "purpose_", "is not part of a request", "did you mean `purpose`?"),
    ("unknown top-level field, far from any", {"zzz": 1}, "zzz", "is not part of a request",
     "a request has requester, action, resource, purpose, context"),
    ("missing role", {"requester.role": DELETE}, "requester.role", "required field is missing", None),
    ("missing agency", {"requester.agency": DELETE}, "requester.agency", "required field is missing", None),
    ("missing action", {"action": DELETE}, "action", "required field is missing", None),
    ("missing purpose", {"purpose": DELETE}, "purpose", "required field is missing", None),
    ("missing category", {"resource.category": DELETE}, "resource.category", "required field is missing", None),
    ("missing classification", {"resource.classification": DELETE}, "resource.classification",
     "required field is missing", None),
    ("missing owner", {"resource.owner": DELETE}, "resource.owner", "required field is missing", None),
    ("null built-in is missing", {"requester.role": None}, "requester.role", "required field is missing", None),
    ("section not an object", {"requester": "gp"}, "requester",
     'expected an object of requester attributes, got "gp"', None),
    ("context as a list", {"context": []}, "context", "expected an object of context attributes, got a list", None),
    ("id not text", {"requester.id": 17}, "requester.id", "expected a string, got 17", None),
]


@pytest.mark.parametrize(("changes", "field", "message", "help"), [i[1:] for i in INVALID],
                         ids=[i[0] for i in INVALID])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_invalid_request(changes, field, message, help, use_cache):
    p = the_policy()
    p.decide(request(), use_cache=use_cache)  # a valid request first: an invalid one is never served from cache
    with pytest.raises(RequestError) as caught:
        p.decide(request(changes), use_cache=use_cache)
    assert (caught.value.field, caught.value.message, caught.value.help) == (field, message, help)


def test_ambiguous_short_name_lists_the_candidates():
    vocabulary = ("actions { view }\nroles { r }\npurposes { a { x }, b { x } }\ncategories { c }\n"
                  "classifications low\nagencies { g }\n")
    p = policy(rule("action view"), vocabulary=vocabulary)
    base = {"requester": {"role": "r", "agency": "g"}, "action": "view", "purpose": "x",
            "resource": {"category": "c", "classification": "low", "owner": "g"}}
    with pytest.raises(RequestError) as caught:
        p.decide(base)
    assert caught.value.field == "purpose"
    assert caught.value.message == "`x` is ambiguous: it could be `a.x`, `b.x`"
    assert caught.value.help == "write the full dotted name"
    assert p.decide({**base, "purpose": "b.x"}).permitted


@pytest.mark.parametrize("garbage", [None, [], "request", 3, b"{}", {"requester": {1: 2}}],
                         ids=["null", "list", "text", "number", "bytes", "odd key"])
def test_garbage_is_a_request_error_not_a_traceback(garbage):
    with pytest.raises(RequestError) as caught:
        the_policy().decide(garbage)
    assert caught.value.field in ("", "requester")


def test_request_error_reads_as_field_message_help():
    with pytest.raises(RequestError) as caught:
        the_policy().decide(request({"requester.role": "socal_worker"}))
    assert str(caught.value) == "requester.role: unknown role `socal_worker` (did you mean `social_worker`?)"
    assert caught.value.to_json() == {"code": "invalid_request", "message": "unknown role `socal_worker`",
                                      "field": "requester.role", "help": "did you mean `social_worker`?"}


@pytest.mark.parametrize(("changes", "path", "value"), [
    ({"purpose": "children"}, "purpose", "safeguarding.children"),
    ({"resource.category": "special_category.health"}, "resource.category", "special_category.health"),
    ({"resource.classification": "official_sensitive"}, "resource.classification", 2),
    ({"context.date": "2025-06-01"}, "context.date", dt.date(2025, 6, 1)),
    ({"context.date": dt.date(2025, 6, 1)}, "context.date", dt.date(2025, 6, 1)),
    ({}, "requester.clearance", 1),
    ({"requester.clearance": "secret"}, "requester.clearance", 3),
    ({}, "context.consent", "not_sought"),
    ({}, "requester.team", "none"),
    ({"resource.subject_age": 12.5}, "resource.subject_age", 12.5),
    ({"context.approved_by": "lead"}, "context.approved_by", "lead"),
], ids=["short name", "full name", "classification rank", "date", "date from YAML", "default classification",
        "classification given", "default choice", "default string", "decimal", "declared role"])
def test_normalised_values(changes, path, value):
    env = the_policy()._schema.validate(request(changes))
    assert env[path] == value


def test_context_date_defaults_to_today():
    env = the_policy()._schema.validate(request({"context": DELETE}))
    assert env["context.date"] == dt.date.today()


def test_omitted_attributes_without_default_are_absent():
    env = the_policy()._schema.validate(request())
    assert "resource.subject_age" not in env and "context.approved_by" not in env


def test_null_is_omitted():
    env = the_policy()._schema.validate(request({"context.consent": None, "resource.subject_age": None}))
    assert env["context.consent"] == "not_sought" and "resource.subject_age" not in env


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-06-01", dt.date(2025, 6, 1)), (dt.date(2024, 2, 29), dt.date(2024, 2, 29)), ("2025-6-1", None),
    ("20250601", None), ("2025-W01-1", None), ("2025-02-30", None), (dt.datetime(2025, 6, 1), None), (None, None),
], ids=["iso", "date", "unpadded", "basic format", "week date", "not a day", "datetime", "null"])
def test_parse_date_is_strict(value, expected):
    assert parse_date(value) == expected


# Requests the generated validator must either judge exactly as the careful one or hand to it.
ODD = [
    ("plain", {}), ("no ids", {"requester.id": DELETE, "resource.id": DELETE}), ("no context", {"context": DELETE}),
    ("null context", {"context": None}), ("empty context", {"context": {}}), ("context a list", {"context": []}),
    ("requester a string", {"requester": "gp"}), ("extra top-level key", {"extra": 1}),
    ("missing action", {"action": DELETE}), ("misspelt action key", {"action": DELETE, "actoin": "view"}),
    ("missing role", {"requester.role": DELETE}), ("misspelt role key", {"requester.role": DELETE,
                                                                          "requester.rol": "gp"}),
    ("null role", {"requester.role": None}), ("role a list", {"requester.role": ["gp"]}),
    ("null id", {"requester.id": None}), ("numeric id", {"resource.id": 5}),
    ("undeclared attribute", {"resource.colour": "red"}), ("null optional", {"context.consent": None}),
    ("null and undeclared", {"context.consent": None, "context.colour": "red"}),
    ("bool as number", {"resource.subject_age": True}), ("number as bool", {"requester.vetted": 1}),
    ("nan", {"resource.subject_age": float("nan")}), ("infinite", {"resource.subject_age": float("inf")}),
    ("number as string", {"resource.subject_age": "5"}), ("integer", {"resource.subject_age": 5}),
    ("unpadded date", {"context.date": "2024-6-1"}), ("not a day", {"context.date": "2024-02-30"}),
    ("date as number", {"context.date": 20240601}), ("date object", {"context.date": dt.date(2024, 6, 1)}),
    ("datetime", {"context.date": dt.datetime(2024, 6, 1)}), ("null date", {"context.date": None}),
    ("other declared date", {"resource.recorded_on": "2020-01-02"}),
    ("unknown choice", {"context.consent": "maybe"}), ("short name", {"purpose": "children"}),
    ("declared role attribute", {"context.approved_by": "lead"}), ("string as role", {"context.approved_by": 7}),
]


@pytest.mark.parametrize("changes", [o[1] for o in ODD], ids=[o[0] for o in ODD])
def test_generated_validation_agrees_with_careful_validation(changes):
    schema = policy(rule("action view"))._schema
    raw = request(changes)
    try:
        slow = schema.validate_slowly(raw)
    except RequestError:
        slow = None
    try:
        fast = schema.fast_validate(raw)
    except TypeError:  # an unhashable value: the careful path says which
        fast = None
    assert fast is None or fast == slow
    if changes in ({}, {"requester.id": DELETE, "resource.id": DELETE}, {"context": DELETE}, {"context": {}},
                   {"context.consent": None}, {"requester.id": None}):
        assert fast is not None  # the usual shapes, and nulls, stay on the generated path


def test_summary_words_are_the_request_s_own():
    env = the_policy()._schema.validate(request({"purpose": "children"}))
    assert env[WORDS] == ("social_worker", "council", "view", "health", "nhs", "children")
