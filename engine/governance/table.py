"""Tables of combinations: rows compressed and worded for people, as text, md, csv or html.

A row is a Box (one set of values per dimension) with an Outcome, or for a
diff a pair of them. The matrix and the diff both find their rows with the
walk in engine/governance/matrix.py; everything they show is made here: rows merged
across one dimension at a time, value sets worded by the vocabulary
(hierarchy nodes, groups, ranges of classifications), and the tables laid
out.
"""

from __future__ import annotations

import csv
import html
import io
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from engine.governance.terms import DIMENSION_KINDS, DIMENSIONS
from engine.symbols import Vocabulary

Box = tuple[frozenset[str], ...]  # one set of values per dimension, in DIMENSIONS order; then per context axis

COLUMNS = {
    "action": "Action", "requester.role": "Role", "requester.agency": "Agency", "purpose": "Purpose",
    "resource.category": "Data", "resource.classification": "Classification", "resource.owner": "Owner",
}


class Outcome(NamedTuple):
    """What one combination comes to: the decision, deciding rules, obligations as shown."""

    decision: str  # permit, deny, or undeclared (a value the version does not declare)
    rules: tuple[str, ...]
    obligations: tuple[tuple[str, tuple[str, ...]], ...]  # (name, arguments as shown)


UNDECLARED = Outcome("undeclared", (), ())


# In the owner column: the requester's own agency, whichever it is.
SAME_AGENCY = frozenset(("=requester.agency",))
_AGENCY, _OWNER = DIMENSIONS.index("requester.agency"), DIMENSIONS.index("resource.owner")


def union_in_order(lists: Iterable[list[str]]) -> list[str]:
    """The values of every list, each once, in the order first met."""
    seen: dict[str, None] = {}
    for values in lists:
        for value in values:
            seen.setdefault(value, None)
    return list(seen)


# --- compressing rows ---------------------------------------------------------------------


def compress(found: list[tuple[Box, Any]]) -> list[tuple[Box, Any]]:
    """Merge rows with the same outcome that differ in one dimension only, until none do.

    First, rows for one agency and records it owns itself merge across
    agencies into "owner: the requester's own agency". Then each column in
    turn merges the rows alike in every other column, round the columns
    until a whole round merges nothing. Rows merge only with rows of their
    own outcome, so each outcome's rows are merged on their own, and a
    merged row stands where its first row stood.
    """
    # Outcomes become small numbers while merging: keys are hashed over and over.
    ids: dict[Any, int] = {}
    outcomes: list[Any] = []
    for _box, outcome in found:
        if outcome not in ids:
            ids[outcome] = len(outcomes)
            outcomes.append(outcome)
    same = _same_agency([(box, ids[outcome]) for box, outcome in found])
    width = len(same[0][0]) if same else len(DIMENSIONS)
    order = list(range(len(DIMENSIONS), width))  # the context's axes first: rows read by rule, not by case
    order += [DIMENSIONS.index(p) for p in ("action", "resource.classification", "resource.category",
                                            "purpose", "resource.owner", "requester.agency", "requester.role")]
    weights = [(2 * i + 1) * _GOLDEN for i in range(width)]  # odd and distinct: one per column
    alike: dict[int, list[tuple[int, Box]]] = {}
    for number, (box, outcome) in enumerate(same):
        alike.setdefault(outcome, []).append((number, box))
    rows: list[tuple[int, Box, int]] = []
    for outcome, members in alike.items():
        if len(members) > 1:
            members = _merge_alike(members, order, weights)
        rows.extend((number, box, outcome) for number, box in members)
    rows.sort(key=lambda row: row[0])
    return [(box, outcomes[outcome]) for _number, box, outcome in rows]


# Rows are compared by a weighted sum of their columns' hashes: a row's key without
# column i is that sum less column i's term, the same for rows alike but for column i
# however wide they are. Rows that share a key are compared in full before they merge.
_GOLDEN = 0x9E3779B97F4A7C15

Numbered = tuple[int, Box]  # a row of one outcome, numbered by where it stands


def _merge_alike(rows: list[Numbered], order: list[int], weights: list[int]) -> list[Numbered]:
    """Rows of one outcome merged column by column, round the columns until none merges.

    A column is looked at again only after another column has merged rows:
    nothing else can give it more to merge. Each row's column hashes and
    their weighted sum are kept as rows merge: a merged row's change in
    one column.
    """
    hashes = [list(map(hash, box)) for _number, box in rows]
    totals = [sum(map(operator.mul, weights, row)) for row in hashes]
    clean: set[int] = set()
    while len(clean) < len(order):
        for index in order:
            if index in clean:
                continue
            clean.add(index)
            column = _column_keys(rows, hashes, totals, weights[index], index)
            if len(set(column)) == len(column):
                continue
            merged = _merge_column(rows, index, column, hashes, totals, weights[index])
            if merged is not None:
                (rows, hashes, totals), clean = merged, {index}
    return rows


def _column_keys(rows: list[Numbered], hashes: list[list[int]], totals: list[int], weight: int,
                 index: int) -> list[Any]:
    """Each row's key without column `index` ("own agency" owners never share one)."""
    keys: list[Any] = [total - weight * row[index] for total, row in zip(totals, hashes)]
    if index == _OWNER:
        for position, (number, box) in enumerate(rows):
            if box[_OWNER] == SAME_AGENCY:
                keys[position] = (number,)
    return keys


Merged = tuple[list[Numbered], list[list[int]], list[int]]  # rows, their column hashes, their weighted sums


def _merge_column(rows: list[Numbered], index: int, column: list[Any], hashes: list[list[int]], totals: list[int],
                  weight: int) -> Merged | None:
    """The rows with those alike but for column `index` merged, in order; None if none are."""
    groups: dict[Any, list[int]] = {}
    for position, key in enumerate(column):
        groups.setdefault(key, []).append(position)
    placed: list[tuple[Numbered, list[int], int]] = []
    for positions in groups.values():
        if len(positions) == 1:
            placed.extend((rows[p], hashes[p], totals[p]) for p in positions)
            continue
        exact: dict[tuple[Any, ...], list[int]] = {}  # sums can coincide: compare the rows themselves
        for position in positions:
            box = rows[position][1]
            exact.setdefault(box[:index] + box[index + 1:], []).append(position)
        for together in exact.values():
            first = together[0]
            if len(together) == 1:
                placed.append((rows[first], hashes[first], totals[first]))
                continue
            number, box = rows[first]
            values = frozenset().union(*(rows[p][1][index] for p in together))
            row_hashes = list(hashes[first])
            row_hashes[index] = hash(values)
            total = totals[first] + weight * (row_hashes[index] - hashes[first][index])
            placed.append(((number, box[:index] + (values,) + box[index + 1:]), row_hashes, total))
    if len(placed) == len(rows):
        return None
    placed.sort(key=lambda entry: entry[0][0])
    return [row for row, _h, _t in placed], [h for _r, h, _t in placed], [t for _r, _h, t in placed]


def _same_agency(found: list[tuple[Box, Any]]) -> list[tuple[Box, Any]]:
    groups: dict[tuple[Any, ...], list[tuple[Box, Any]]] = {}
    for box, outcome in found:
        agency, owner = box[_AGENCY], box[_OWNER]
        key = (outcome, box[:_AGENCY] + box[_AGENCY + 1:_OWNER] + box[_OWNER + 1:]) \
            if len(agency) == 1 and agency == owner else (len(groups),)
        groups.setdefault(key, []).append((box, outcome))
    rows = []
    for key, members in groups.items():
        if len(members) == 1:
            rows.extend(members)
            continue
        box, outcome = members[0]
        agencies = frozenset().union(*(b[_AGENCY] for b, _o in members))
        rows.append((box[:_AGENCY] + (agencies,) + box[_AGENCY + 1:_OWNER] + (SAME_AGENCY,) + box[_OWNER + 1:],
                     outcome))
    return rows


def cells_in(box: Box) -> int:
    """How many combinations (of values and context cases) a row stands for."""
    return math.prod(map(len, box))  # "the requester's own agency" is one value, so counts 1


def sort_rows(rows: list[tuple[Box, Any]], *vocabs: Vocabulary) -> list[tuple[Box, Any]]:
    """Rows in rule order, then by the declared order of their first values."""
    rule_order: dict[str, int] = {}
    for vocab in vocabs:
        for rule in vocab.rules:
            rule_order.setdefault(rule.id.text, len(rule_order))
    value_order = {}
    for path in DIMENSIONS:
        values = union_in_order(v.values_of(DIMENSION_KINDS[path]) for v in vocabs)
        value_order[path] = {v: i for i, v in enumerate(values)}

    # Rows share their outcomes and most of their value sets: each is placed once.
    by_rules: dict[int, tuple[int, ...]] = {}
    firsts: dict[tuple[str, frozenset[str]], int] = {}

    def first(path: str, values: frozenset[str]) -> int:
        found = firsts.get((path, values))
        if found is None:
            order = value_order[path]
            found = firsts[path, values] = min(order.get(v, 0) for v in values)
        return found

    def key(row: tuple[Box, Any]) -> tuple[Any, ...]:
        box, outcome = row
        rules = by_rules.get(id(outcome))
        if rules is None:
            rules = by_rules[id(outcome)] = tuple(sorted(rule_order.get(r, len(rule_order))
                                                         for r in _outcome_rules(outcome)))
        return (rules, tuple(map(first, DIMENSIONS, box)))

    return sorted(rows, key=key)


def _outcome_rules(outcome: Any) -> tuple[str, ...]:
    if isinstance(outcome, Outcome):
        return outcome.rules
    return tuple(r for o in outcome for r in o.rules)


# --- showing value sets: hierarchy nodes, groups, ranges ----------------------------------


class Legend:
    """Words a set of values by the vocabulary (of one version, or of two together).

    A role, purpose or category stands for itself and everything below it;
    `name (only)` is that value without the ones below. A group stands for
    its agencies. Classifications read as ranges (`up to official`).
    """

    def __init__(self, *vocabs: Vocabulary):
        self.values = {p: union_in_order(v.values_of(DIMENSION_KINDS[p]) for v in vocabs) for p in DIMENSIONS}
        self.below: dict[str, dict[str, frozenset[str]]] = {}
        for kind in ("role", "purpose", "category"):
            below: dict[str, set[str]] = {}
            for vocab in vocabs:
                for node, nodes in vocab.tree(kind).descendants.items():
                    below.setdefault(node, set()).update(nodes)
            self.below[kind] = {n: frozenset(s) for n, s in below.items()}
        self.groups = _shared_groups(vocabs)
        self.ranks = union_in_order(sorted(v.classifications, key=v.classifications.__getitem__) for v in vocabs)

    def show(self, path: str, values: frozenset[str]) -> list[str]:
        """The shortest faithful wording of `values` as a list of items."""
        if values == SAME_AGENCY:
            return ["requester's own agency"]
        everything = self.values[path]
        if len(values) == len(everything) and len(everything) > 1:
            return ["any"]
        kind = DIMENSION_KINDS[path]
        if kind in self.below:
            return self._nodes(kind, path, values)
        if kind == "agency":
            return self._agencies(path, values)
        if kind == "classification":
            return self._ranks(values)
        return [v for v in everything if v in values]

    def expand(self, box: Box) -> list[list[str]]:
        """Every value each column of a row stands for (the owner's own agency: the agencies)."""
        found = [[v for v in self.values[p] if v in s] for p, s in zip(DIMENSIONS, box)]
        if box[_OWNER] == SAME_AGENCY:
            found[_OWNER] = found[_AGENCY]
        return found

    def _nodes(self, kind: str, path: str, values: frozenset[str]) -> list[str]:
        below = self.below[kind]
        order = self.values[path]
        covered: set[str] = set()
        shown = []
        for node in order:
            if node not in values or node in covered:
                continue
            under = below.get(node, frozenset((node,)))
            if under <= values:
                shown.append(node)
                covered |= under
                continue
            missing = self._cover(order, below, under - values)
            if len(missing) <= 2 and len(under - values) < len(under & values):
                shown.append(f"{node} (except {' and '.join(missing)})")
                covered |= under & values
        shown.extend(f"{node} (only)" for node in order if node in values and node not in covered)
        position = {v: i for i, v in enumerate(order)}
        return sorted(shown, key=lambda s: position[s.split(" ")[0]])

    @staticmethod
    def _cover(order: list[str], below: dict[str, frozenset[str]], values: frozenset[str]) -> list[str]:
        """The fewest nodes, in declared order, whose subtrees make up exactly `values`."""
        found: list[Any] = []
        covered: set[Any] = set()
        for node in order:
            if node in values and node not in covered and below.get(node, frozenset((node,))) <= values:
                found.append(node)
                covered |= below.get(node, frozenset((node,)))
        return found

    def _agencies(self, path: str, values: frozenset[str]) -> list[str]:
        shown: list[Any] = []
        covered: set[Any] = set()
        for name, members in sorted(self.groups.items(), key=lambda g: (-len(g[1]), g[0])):
            if len(members) > 1 and members <= values and not members <= covered:
                shown.append(name)
                covered |= members
        shown.extend(v for v in self.values[path] if v in values and v not in covered)
        return shown

    def _ranks(self, values: frozenset[str]) -> list[str]:
        positions = sorted(self.ranks.index(v) for v in values if v in self.ranks)
        if positions and positions == list(range(positions[0], positions[-1] + 1)) and len(positions) > 1:
            low, high = self.ranks[positions[0]], self.ranks[positions[-1]]
            return [f"up to {high}"] if positions[0] == 0 else [f"{low} to {high}"]
        return [v for v in self.ranks if v in values]


def _shared_groups(vocabs: Sequence[Vocabulary]) -> dict[str, frozenset[str]]:
    """Groups that mean the same in every version that declares them."""
    found: dict[str, frozenset[str]] = {}
    clash: set[str] = set()
    for vocab in vocabs:
        for name, members in vocab.groups.items():
            if name in found and found[name] != members:
                clash.add(name)
            found.setdefault(name, members)
    return {n: m for n, m in found.items() if n not in clash}


# --- rendering --------------------------------------------------------------------------


def row_cells(legend: Legend, box: Box) -> list[str]:
    """A row's value sets worded, one cell per dimension."""
    return [", ".join(legend.show(p, s)) for p, s in zip(DIMENSIONS, box)]


def show_obligations(obligations: Iterable[tuple[str, tuple[str, ...]]], box: Box) -> str:
    """Obligations as `name arg, arg; name`; an attribute argument whose row has one value
    for it is shown as that value."""
    single = {p: next(iter(s)) for p, s in zip(DIMENSIONS, box) if len(s) == 1 and s != SAME_AGENCY}
    if box and box[_OWNER] == SAME_AGENCY:
        single.pop("resource.owner", None)
        if "requester.agency" in single:
            single["resource.owner"] = single["requester.agency"]
    words = []
    for name, args in obligations:
        shown = [single.get(a, a) for a in args]
        words.append(name + (" " + ", ".join(shown) if shown else ""))
    return "; ".join(words)


def to_csv(headers: list[str], table: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(table)
    return out.getvalue()


def to_markdown(headers: list[str], table: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or "-"

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in table)
    return "\n".join(lines) + "\n"


def to_html(title: str, facts: str, headers: list[str], table: list[list[str]],
            expanded: list[list[list[str]]], choices: list[list[str]]) -> str:
    """One self-contained page: a table with a select box per dimension and a text filter.

    Each cell carries every value it stands for (`data-v`), so choosing
    `safeguarding.adults` keeps the rows that say `safeguarding`.
    """
    e = html.escape
    head = []
    for index, header in enumerate(headers):
        if index < len(choices):
            options = "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in choices[index])
            control = f'<select data-col="{index}"><option value="">all</option>{options}</select>'
        else:
            control = f'<input data-col="{index}" type="search" placeholder="filter">'
        head.append(f"<th>{e(header)}<br>{control}</th>")
    body = []
    for row, values in zip(table, expanded):
        cells = []
        for index, text in enumerate(row):
            covered = " ".join(values[index]) if index < len(values) else ""
            cells.append(f'<td data-v=" {e(covered)} ">{e(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _PAGE.format(title=e(title), facts=e(facts), head="".join(head), body="\n".join(body),
                        count=len(table))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; text-align: left; }}
th {{ background: #f0f2f5; position: sticky; top: 0; }}
select, input {{ width: 100%; margin-top: 4px; font-size: 12px; }}
tr:nth-child(even) td {{ background: #fafafa; }}
#shown {{ color: #555; }}
</style></head><body>
<h1>{title}</h1>
<p>{facts}</p>
<p><input id="search" type="search" placeholder="Filter every column"> <span id="shown">{count} rows</span></p>
<table><thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody></table>
<script>
(function () {{
  var controls = document.querySelectorAll("th select, th input");
  var search = document.getElementById("search");
  var rows = document.querySelectorAll("tbody tr");
  function apply() {{
    var shown = 0, text = search.value.toLowerCase();
    rows.forEach(function (row) {{
      var ok = !text || row.textContent.toLowerCase().indexOf(text) >= 0;
      controls.forEach(function (c) {{
        var cell = row.cells[+c.dataset.col], want = c.value;
        if (!ok || !want) return;
        if (c.tagName === "SELECT") ok = cell.dataset.v.indexOf(" " + want + " ") >= 0;
        else ok = cell.textContent.toLowerCase().indexOf(want.toLowerCase()) >= 0;
      }});
      row.style.display = ok ? "" : "none";
      if (ok) shown++;
    }});
    document.getElementById("shown").textContent = shown + " rows";
  }}
  controls.forEach(function (c) {{ c.addEventListener("input", apply); }});
  search.addEventListener("input", apply);
}})();
</script>
</body></html>
"""
