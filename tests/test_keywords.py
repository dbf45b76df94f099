import pytest
from lark import Lark

from engine._keywords import keywords
from engine.syntax import KEYWORDS

NAME = r'NAME: /[a-z_]+/' + "\nNUMBER: /[0-9]+/\n%ignore \" \"\n"


@pytest.mark.parametrize(("grammar", "expected"), [
    ('start: "permit" NAME\n', {"permit"}),
    ('start: "permit" NAME | "wait" NUMBER "days"\n', {"permit", "wait"}),
    ('start: "permit" NAME | NUMBER unit\nunit: "day" | "days" | "weeks"\n', {"permit"}),
    ('start: "permit" NAME | NUMBER "days" | "days" NAME\n', {"permit", "days"}),
    ('start: "permit" NAME | "{" "}"\n', {"permit"}),
], ids=["word", "unit-after-a-number", "units-in-their-own-rule", "unit-used-elsewhere-too", "punctuation"])
def test_keywords_are_the_grammars_words_but_units_after_a_number(grammar, expected):
    assert keywords(Lark(grammar + NAME, parser="lalr")) == expected


def test_the_languages_keywords_come_from_its_grammar():
    assert {"permit", "deny", "under", "when", "unless", "obligation", "because", "and", "or"} <= KEYWORDS
    assert not {"day", "days", "week", "weeks", "month", "months", "year", "years"} & KEYWORDS
