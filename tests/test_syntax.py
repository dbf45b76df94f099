import datetime as dt

import pytest

from engine import ast
from engine.errors import PolicySyntaxError
from engine.source import Source
from engine.syntax import parse

# Spans are ignored by equality, so expected trees are written without them.


def N(text):
    return ast.Name(text, None)


def S(value):
    return ast.StringLit(value, None)


def D(text):
    return ast.DateLit(dt.date.fromisoformat(text), None)


def item(name, label=None):
    return ast.VocabItem(N(name), label, None)


def node(name, *children, label=None):
    return ast.TreeNode(N(name), label, tuple(children), None)


def rule(rule_id, *clauses, effect=ast.Effect.PERMIT, description=None):
    return ast.Rule(effect, N(rule_id), description, tuple(clauses), None)


def match(kind, *names):
    return ast.MatchClause(ast.ClauseKind(kind), tuple(N(n) for n in names), None)


def when(expr, negated=False):
    return ast.ConditionClause(negated, expr, None)


def cmp(left, op, right):
    return ast.Compare(op, left, right, None)


def parsed(text):
    return parse(Source("t.policy", text)).declarations


def parsed_rule_expr(condition):
    (declaration,) = parsed(f"permit r {{\n  when {condition}\n}}\n")
    (clause,) = declaration.clauses
    return clause.expr


DECLARATIONS = [
    (
        'policy "GM sharing" {\n  version "2.1"\n  owner "IG board"\n  combine permit-overrides\n}',
        ast.PolicyHeader("GM sharing", "2.1", "IG board", ast.Combine.PERMIT_OVERRIDES, None),
    ),
    ('policy "Bare" {}', ast.PolicyHeader("Bare", None, None, None, None)),
    ("actions { view, share, export }", ast.ActionsDecl((item("view"), item("share"), item("export")), None)),
    ('actions {\n  view "Read it"\n  share\n}', ast.ActionsDecl((item("view", "Read it"), item("share")), None)),
    (
        'roles {\n  social_worker "Social worker"\n  senior : social_worker\n  lead "Lead" : senior, police\n  gp, nurse\n}',
        ast.RolesDecl(
            (
                ast.RoleItem(N("social_worker"), "Social worker", (), None),
                ast.RoleItem(N("senior"), None, (N("social_worker"),), None),
                ast.RoleItem(N("lead"), "Lead", (N("senior"), N("police")), None),
                ast.RoleItem(N("gp"), None, (), None),
                ast.RoleItem(N("nurse"), None, (), None),
            ),
            None,
        ),
    ),
    (
        "purposes {\n  safeguarding { children, adults }\n  direct_care\n}",
        ast.PurposesDecl((node("safeguarding", node("children"), node("adults")), node("direct_care")), None),
    ),
    (
        'categories {\n  special_category "Special" {\n    health\n    ethnicity\n  }\n  education, housing\n}',
        ast.CategoriesDecl(
            (
                node("special_category", node("health"), node("ethnicity"), label="Special"),
                node("education"),
                node("housing"),
            ),
            None,
        ),
    ),
    (
        "classifications public < official < secret",
        ast.ClassificationsDecl((item("public"), item("official"), item("secret")), None),
    ),
    (
        'agencies {\n  mcc "Manchester City Council"\n  gmp\n}',
        ast.AgenciesDecl((item("mcc", "Manchester City Council"), item("gmp")), None),
    ),
    ("group partners = { mcc, gmp }", ast.GroupDecl(N("partners"), (N("mcc"), N("gmp")), None)),
    ("group partners = {\n  mcc,\n  gmp,\n}", ast.GroupDecl(N("partners"), (N("mcc"), N("gmp")), None)),
    ("group nobody = {}", ast.GroupDecl(N("nobody"), (), None)),
    (
        "attributes {\n"
        "  requester.vetted bool default false\n"
        "  requester.clearance classification default official\n"
        "  context.consent one of { given, refused } default given\n"
        "  resource.subject_age number\n"
        '  requester.team string default "none"\n'
        "  resource.recorded_on date default 2020-01-01\n"
        "  context.count number default 3\n"
        '  resource.lacks_capacity "lacks capacity to consent" bool\n'
        "}",
        ast.AttributesDecl(
            (
                ast.AttributeDecl(N("requester.vetted"), ast.AttrType("bool"), ast.BoolLit(False, None), None),
                ast.AttributeDecl(N("requester.clearance"), ast.AttrType("classification"), N("official"), None),
                ast.AttributeDecl(
                    N("context.consent"), ast.AttrType("one_of", (item("given"), item("refused"))), N("given"), None
                ),
                ast.AttributeDecl(N("resource.subject_age"), ast.AttrType("number"), None, None),
                ast.AttributeDecl(N("requester.team"), ast.AttrType("string"), S("none"), None),
                ast.AttributeDecl(N("resource.recorded_on"), ast.AttrType("date"), D("2020-01-01"), None),
                ast.AttributeDecl(N("context.count"), ast.AttrType("number"), ast.NumberLit(3, None), None),
                ast.AttributeDecl(N("resource.lacks_capacity"), ast.AttrType("bool"), None, None,
                                  "lacks capacity to consent"),
            ),
            None,
        ),
    ),
    (
        'agreement gm_dsa "GM DSA" {\n  parties partners, nhs\n  valid 2024-04-01 to 2027-03-31\n  reference "DSA-1"\n}',
        ast.AgreementDecl(
            N("gm_dsa"), "GM DSA", (N("partners"), N("nhs")), None, None,
            ast.Validity(D("2024-04-01"), D("2027-03-31"), None), "DSA-1", None,
        ),
    ),
    (
        "agreement one_way {\n  from gp_practices\n  to gmp\n}",
        ast.AgreementDecl(N("one_way"), None, None, (N("gp_practices"),), (N("gmp"),), None, None, None),
    ),
    (
        'permit child_protection "Share for enquiries" {\n'
        "  action view, share\n"
        "  role social_worker\n"
        "  agency mcc, partners\n"
        "  purpose safeguarding.children\n"
        "  data social_care, health up to official_sensitive\n"
        "  owner nhs\n"
        "  under gm_dsa\n"
        "  when context.risk_of_harm\n"
        "  unless context.emergency\n"
        "  obligation audit\n"
        '  obligation redact "nhs_number", 3 unless requester.role is gp\n'
        '  because "Children Act 1989 s.47"\n'
        "}",
        rule(
            "child_protection",
            match("action", "view", "share"),
            match("role", "social_worker"),
            match("agency", "mcc", "partners"),
            match("purpose", "safeguarding.children"),
            ast.DataClause((N("social_care"), N("health")), N("official_sensitive"), None),
            match("owner", "nhs"),
            match("under", "gm_dsa"),
            when(N("context.risk_of_harm")),
            when(N("context.emergency"), negated=True),
            ast.ObligationClause("audit", (), None, None),
            ast.ObligationClause(
                "redact",
                (S("nhs_number"), ast.NumberLit(3, None)),
                when(ast.Is(N("requester.role"), N("gp"), None), negated=True),
                None,
            ),
            ast.BecauseClause("Children Act 1989 s.47", None),
            description="Share for enquiries",
        ),
    ),
    (
        'deny no_marketing {\n  purpose marketing\n  data any up to secret\n  because "Art. 21(3)"\n}',
        rule(
            "no_marketing",
            match("purpose", "marketing"),
            ast.DataClause((), N("secret"), None),
            ast.BecauseClause("Art. 21(3)", None),
            effect=ast.Effect.DENY,
        ),
    ),
    ("permit empty {}", rule("empty")),
    (
        "on permit obligation log resource.owner when action in {share, export}",
        ast.PolicyObligation(
            ast.Outcome.PERMIT,
            ast.ObligationClause(
                "log", (N("resource.owner"),), when(ast.InSet(N("action"), (N("share"), N("export")), None)), None
            ),
            None,
        ),
    ),
    (
        "on any obligation record",
        ast.PolicyObligation(ast.Outcome.ANY, ast.ObligationClause("record", (), None, None), None),
    ),
]


@pytest.mark.parametrize(("text", "expected"), DECLARATIONS, ids=lambda v: v.split()[0] if isinstance(v, str) else "")
def test_declaration(text, expected):
    assert parsed(text + "\n") == (expected,)


EXPRESSIONS = [
    ("context.consent == given", cmp(N("context.consent"), "==", N("given"))),
    ("a != 3", cmp(N("a"), "!=", ast.NumberLit(3, None))),
    ("a < 2.5", cmp(N("a"), "<", ast.NumberLit(2.5, None))),
    ("a <= -1", cmp(N("a"), "<=", ast.NumberLit(-1, None))),
    ("a > 2025-06-01", cmp(N("a"), ">", D("2025-06-01"))),
    ('a >= "x"', cmp(N("a"), ">=", S("x"))),
    ('a == "say \\"hi\\" \\\\"', cmp(N("a"), "==", S('say "hi" \\'))),
    ("a == true", cmp(N("a"), "==", ast.BoolLit(True, None))),
    ("a == false", cmp(N("a"), "==", ast.BoolLit(False, None))),
    ("action in {share, export}", ast.InSet(N("action"), (N("share"), N("export")), None)),
    ("a in {}", ast.InSet(N("a"), (), None)),
    ("a in {1, 2,}", ast.InSet(N("a"), (ast.NumberLit(1, None), ast.NumberLit(2, None)), None)),
    ("requester.agency in partners", ast.InGroup(N("requester.agency"), N("partners"), None)),
    ("purpose is safeguarding.children", ast.Is(N("purpose"), N("safeguarding.children"), None)),
    ("has resource.recorded_on", ast.Has(N("resource.recorded_on"), None)),
    ("context.emergency", N("context.emergency")),
    ("not a", ast.Not(N("a"), None)),
    ("not not a", ast.Not(ast.Not(N("a"), None), None)),
    ("a and b and c", ast.BoolOp("and", (N("a"), N("b"), N("c")), None)),
    ("a or b and c", ast.BoolOp("or", (N("a"), ast.BoolOp("and", (N("b"), N("c")), None)), None)),
    ("(a or b) and c", ast.BoolOp("and", (ast.BoolOp("or", (N("a"), N("b")), None), N("c")), None)),
    ("not a == b", ast.Not(cmp(N("a"), "==", N("b")), None)),
    ("not has a or b", ast.BoolOp("or", (ast.Not(ast.Has(N("a"), None), None), N("b")), None)),
    ("(a or b) == true", cmp(ast.BoolOp("or", (N("a"), N("b")), None), "==", ast.BoolLit(True, None))),
]


@pytest.mark.parametrize(("text", "expected"), EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_expression(text, expected):
    assert parsed_rule_expr(text) == expected


# LANGUAGE.md section 1: a line continues after `,` `{` `(` or an operator, or
# when the next line starts with `or`, `and` or `)`.
SAME_AS_ONE_LINE = [
    ("a or\n    b", "a or b"),
    ("a and\n    b", "a and b"),
    ("not\n    a", "not a"),
    ("a\n    or b", "a or b"),
    ("a\n    and b", "a and b"),
    ("(a or b\n    )", "(a or b)"),
    ("(\n    a or b)", "(a or b)"),
    ("a ==\n    b", "a == b"),
    ("a !=\n    b", "a != b"),
    ("a <\n    3", "a < 3"),
    ("a <=\n    3", "a <= 3"),
    ("a >\n    3", "a > 3"),
    ("a >=\n    3", "a >= 3"),
    ("a in\n    {b, c}", "a in {b, c}"),
    ("a in {\n    b,\n    c\n    }", "a in {b, c}"),
    ("a is\n    b", "a is b"),
    ("a # why\n    or b", "a or b"),
    ("a or # why\n    b", "a or b"),
    ("a or\n\n    b", "a or b"),
]


@pytest.mark.parametrize(("layout", "one_line"), SAME_AS_ONE_LINE, ids=[s[0] for s in SAME_AS_ONE_LINE])
def test_line_continues(layout, one_line):
    assert parsed_rule_expr(layout) == parsed_rule_expr(one_line)


def test_comma_continues_a_clause_list():
    assert parsed("permit r {\n  role a,\n       b\n}\n") == parsed("permit r { role a, b }\n")


def test_data_clause_continues_after_comma():
    laid_out = "permit r {\n  data a,\n       b up to c\n}\n"
    assert parsed(laid_out) == parsed("permit r { data a, b up to c }\n")


@pytest.mark.parametrize("keyword", ["when", "unless", "obligation x", 'because "y"', "role r", "action a"])
def test_clause_keyword_at_line_start_begins_a_new_clause(keyword):
    # the line before ends in `or`, which would otherwise continue it
    (declaration,) = parsed(f"permit r {{\n  when a or b\n  {keyword}{' c' if keyword in ('when', 'unless') else ''}\n}}\n")
    assert len(declaration.clauses) == 2


def test_newline_ends_a_clause():
    with pytest.raises(PolicySyntaxError):
        parsed("permit r {\n  when a\n  b\n}\n")


def test_blank_lines_and_comments_between_declarations():
    text = "# header comment\n\n\nactions { view }   # trailing\n\n# between\n\nroles { gp }\n# end"
    assert parsed(text) == (
        ast.ActionsDecl((item("view"),), None),
        ast.RolesDecl((ast.RoleItem(N("gp"), None, (), None),), None),
    )


def test_empty_file_parses():
    assert parsed("") == ()
    assert parsed("\n\n# only a comment\n") == ()


def test_comments_are_kept_with_their_place():
    policy = parse(Source("t.policy", "# one\nactions { view }  # two\n  # three\n"))
    assert [c.text for c in policy.comments] == [" one", " two", " three"]
    assert [(c.span.line, c.span.column) for c in policy.comments] == [(1, 1), (2, 19), (3, 3)]


def test_hash_inside_a_string_is_not_a_comment():
    policy = parse(Source("t.policy", 'permit r { because "clause #4" }\n'))
    assert policy.comments == ()
    assert policy.declarations[0].clauses[0].text == "clause #4"


def test_windows_line_endings():
    assert parsed("actions { view }\r\nroles {\r\n  gp\r\n  nurse\r\n}\r\n") == parsed("actions { view }\nroles { gp, nurse }\n")


def test_spans_point_at_names():
    (declaration,) = parsed("permit r {\n  role   social_worker\n}\n")
    name = declaration.clauses[0].values[0]
    assert (name.span.line, name.span.column, name.span.end_column) == (2, 10, 23)
    assert name.span.snippet() == "  role   social_worker\n         ^^^^^^^^^^^^^"


def test_equality_ignores_layout_and_spans():
    a = parse(Source("a.policy", "roles { gp, nurse }"))
    b = parse(Source("b.policy", "\n\nroles {\n   gp\n   nurse\n}\n"))
    assert a.declarations == b.declarations


def test_keywords_action_and_purpose_are_also_attributes():
    assert parsed_rule_expr("action == view and purpose is research") == ast.BoolOp(
        "and", (cmp(N("action"), "==", N("view")), ast.Is(N("purpose"), N("research"), None)), None
    )
