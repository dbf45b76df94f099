import dataclasses
import datetime as dt
import threading

import pytest

from conftest import DELETE, policy, request, rule
from engine.cache import FORMAT, DecisionCache
from engine.errors import RequestError
from engine.request import today

RULES = rule("purpose safeguarding\nwhen context.risk_of_harm or resource.subject_age < 18\nobligation notify "
             "resource.owner", name="p") + rule("under isa", name="dated")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def p():
    return policy(RULES)


def test_second_decision_is_a_hit(p):
    first, second = p.decide(request()), p.decide(request())
    assert p.cache_stats() == {"hits": 1, "misses": 1, "size": 1, "maxsize": 10_000, "ttl": 300.0}
    assert second.to_dict() | {"decision_id": None} == first.to_dict() | {"decision_id": None}


@pytest.mark.parametrize("changes", [
    {"requester.id": "someone-else"}, {"resource.id": "another-record"}, {"requester.id": DELETE},
    {"requester.team": "MASH"}, {"requester.vetted": True}, {"context.consent": "given"},
], ids=["requester id", "resource id", "no id", "unread string", "unread bool", "unread choice"])
def test_what_no_rule_reads_does_not_split_the_cache(p, changes):
    p.decide(request())
    p.decide(request(changes))
    assert p.cache_stats()["hits"] == 1


@pytest.mark.parametrize("changes", [
    {"context.risk_of_harm": True}, {"resource.subject_age": 4}, {"resource.owner": "police"},
    {"context.date": "2030-01-01"}, {"purpose": "children"}, {"requester.role": "lead"},
], ids=["read bool", "read number", "obligation argument", "date", "another spelling", "summary word"])
def test_what_rules_read_is_in_the_key(p, changes):
    p.decide(request())
    p.decide(request(changes))
    assert p.cache_stats()["hits"] == 0


def test_unread_attributes_are_still_checked_on_a_hit(p):
    p.decide(request())
    with pytest.raises(RequestError) as caught:
        p.decide(request({"requester.team": 5}))
    assert caught.value.field == "requester.team"
    with pytest.raises(RequestError):
        p.decide(request({"requester.id": 5}))


@pytest.mark.parametrize(("valid", "invalid", "field"), [
    ({"context.risk_of_harm": True}, {"context.risk_of_harm": 1}, "context.risk_of_harm"),
    ({"context.risk_of_harm": False}, {"context.risk_of_harm": 0.0}, "context.risk_of_harm"),
    ({"resource.subject_age": 1}, {"resource.subject_age": True}, "resource.subject_age"),
], ids=["1 is not true", "0.0 is not false", "true is not 1"])
def test_values_python_calls_equal_are_not_served_from_cache(p, valid, invalid, field):
    p.decide(request(valid))
    with pytest.raises(RequestError) as caught:
        p.decide(request(invalid))
    assert caught.value.field == field


def test_entries_expire_after_the_ttl(p):
    clock = Clock()
    p._cache = DecisionCache(100, 5.0, timer=clock)
    p.decide(request())
    clock.now = 4.9
    p.decide(request())
    clock.now = 10.0
    p.decide(request())
    assert p.cache_stats()["hits"] == 1 and p.cache_stats()["misses"] == 2


def test_size_is_bounded():
    small = policy(RULES, cache_size=2)
    for age in range(5):
        small.decide(request({"resource.subject_age": age}))
    assert small.cache_stats()["size"] == 2 and small.cache_stats()["maxsize"] == 2


def test_a_new_policy_version_is_never_served_an_old_decision():
    old = policy(rule("action view", name="old"))
    new = policy(rule("action view", "deny", name="new"))
    assert old.version != new.version
    assert old.decide(request()).decision == "permit"
    assert new.decide(request()).decision == "deny"
    key = old._keys.fast(request())
    assert key[0] == f"{FORMAT}:{old.version}"


def test_every_decision_has_its_own_id(p):
    ids = {p.decide(request()).decision_id for _ in range(50)}
    ids |= {p.decide(request(), use_cache=False).decision_id for _ in range(50)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_without_a_date_the_key_holds_today(p, monkeypatch):
    monkeypatch.setattr(today, "_until", float("inf"))
    monkeypatch.setattr(today, "date", dt.date(2024, 6, 1))
    undated = request({"context": DELETE, "resource.owner": "council", "purpose": "research"})
    assert p.decide(undated).decision == "permit"  # under isa on 2024-06-01
    monkeypatch.setattr(today, "date", dt.date(2030, 1, 1))
    assert p.decide(undated).decision == "deny"  # the agreement has ended: not yesterday's answer


def test_caching_can_be_turned_off(p):
    off = policy(RULES, cache_size=0)
    off.decide(request())
    off.decide(request())
    assert off.cache_stats() == {"hits": 0, "misses": 0, "size": 0, "maxsize": 0, "ttl": 300.0}
    p.decide(request(), use_cache=False)
    assert p.cache_stats()["size"] == 0


@pytest.mark.parametrize("changes", [{}, {"requester.team": "x"}, {"context": DELETE}, {"requester.id": DELETE}],
                         ids=["plain", "unread attribute", "no context", "no id"])
def test_fast_and_careful_keys_agree(p, changes):
    raw = request(changes)
    fast = p._keys.fast(raw)
    assert fast is None or fast == p._keys.project(raw)
    if "requester.team" not in str(changes):
        assert fast is not None


def test_odd_shapes_take_the_careful_path(p):
    assert p._keys.fast([]) is None
    assert p._keys.fast({"requester": "gp"}) is None
    assert p._keys.fast(request({"extra": 1})) is None


def test_concurrent_decisions_agree(p):
    expected = p.decide(request(), use_cache=False).decision
    seen = []

    def work():
        seen.extend(p.decide(request({"resource.subject_age": n % 7})).decision for n in range(200))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 800 and set(seen) == {expected, "permit"}
    stats = p.cache_stats()
    assert stats["hits"] + stats["misses"] == 800


# Variants of a valid request, valid or not: a cache primed with valid decisions must answer
# each exactly as deciding it afresh does (the same decision, or the same error).
VARIANTS = [
    ("unread null", {"requester.team": None}), ("unread wrong type", {"requester.team": 5}),
    ("unread and undeclared", {"requester.team": "x", "requester.colour": "red"}),
    ("undeclared", {"resource.colour": "red"}), ("null id", {"requester.id": None}),
    ("numeric id", {"resource.id": 7}), ("role missing, misspelt key instead",
                                         {"requester.role": DELETE, "requester.rol": "social_worker"}),
    ("owner missing, misspelt key instead", {"resource.owner": DELETE, "resource.ownr": "nhs"}),
    ("action missing, misspelt key instead", {"action": DELETE, "actoin": "view"}),
    ("null role", {"requester.role": None}), ("null context", {"context": None}), ("no context", {"context": DELETE}),
    ("1 for true", {"context.risk_of_harm": 1}), ("true for 1", {"resource.subject_age": True}),
    ("1.0 for 1", {"resource.subject_age": 1.0}), ("string for 1", {"resource.subject_age": "1"}),
    ("null read value", {"resource.subject_age": None}), ("unknown choice", {"context.consent": "maybe"}),
    ("bad date", {"context.date": "2024-6-1"}), ("list for a name", {"purpose": ["safeguarding"]}),
    ("extra top-level key", {"extra": 1}), ("a section that is not an object", {"resource": "nhs"}),
]
PRIMED = [{}, {"context.risk_of_harm": True}, {"resource.subject_age": 1}, {"requester.team": "MASH"},
          {"requester.id": DELETE}]


def answer(p, raw, use_cache):
    try:
        decision = p.decide(raw, use_cache=use_cache)
    except RequestError as exc:
        return "error", exc.field
    return decision.to_dict() | {"decision_id": None}


@pytest.mark.parametrize("changes", [v[1] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_a_cache_answers_every_request_as_deciding_afresh_does(p, changes):
    for primed in PRIMED:
        p.decide(request(primed))
    expected = answer(p, request(changes), use_cache=False)
    assert answer(p, request(changes), use_cache=True) == expected
    assert answer(p, request(changes), use_cache=True) == expected  # a hit, if it was stored


def test_an_expired_entry_is_decided_again_and_replaced(p):
    clock = Clock()
    p._cache = DecisionCache(2, 5.0, timer=clock)
    first = p.decide(request())
    clock.now = 6.0
    second = p.decide(request())
    third = p.decide(request())
    assert p.cache_stats() | {"ttl": None} == {"hits": 1, "misses": 2, "size": 1, "maxsize": 2, "ttl": None}
    assert first.decision == second.decision == third.decision


def test_hits_share_the_cached_decision_s_explanation(p):
    near = request({"resource.owner": "school", "purpose": "research"})
    first, second = p.decide(near), p.decide(near)
    assert p.cache_stats()["hits"] == 1 and first.decision_id != second.decision_id
    assert second.summary is first.summary and second.near_misses is first.near_misses
    third = p.decide(near)  # issued after the explanation was worked out
    assert third.summary is first.summary and third == dataclasses.replace(first, decision_id=third.decision_id)
