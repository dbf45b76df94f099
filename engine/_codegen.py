"""Generated code: the one place the engine turns Python it wrote into functions.

Three hot paths are generated for each policy set, because a function written
out for the set's own attributes and rules runs several times faster than a
general one walking tables (BENCHMARKS.md, deciding): request validation
(request.py), cache keys (cache.py) and candidate rules (compiler.py); and the
comparison closures, one per operator (_expressions.py). The text is always
the engine's own: no request or policy text is ever pasted into it except as
`repr`s of declared names.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import CodeType
from typing import Any


def define(names: str | tuple[str, ...], lines: Iterable[str], namespace: dict[str, Any]) -> Any:
    """Run generated `lines` in `namespace`; return the function `names` (or a tuple of functions).

    `namespace` holds the constants the code refers to (`_T0`, `_DEFAULTS`, ...).
    The code's file name in tracebacks is `<generated NAME>`.
    """
    wanted = (names,) if isinstance(names, str) else names
    code = compile("\n".join(lines), f"<generated {', '.join(wanted)}>", "exec")
    exec(code, namespace)  # noqa: S102 - the engine's own text (see above)
    # The functions' globals are `namespace`: left in it, they would make a cycle with it,
    # and a set's tables (the candidates' bitsets) would wait for the cyclic collector
    # instead of going with the set. The generated code never names its own functions.
    assert not set(wanted) & _names_used(code), "generated code must not call its own functions"
    found = tuple(namespace.pop(n) for n in wanted)
    return found[0] if isinstance(names, str) else found


def _names_used(code: CodeType) -> set[str]:
    """The global names the functions defined by `code` read (at any depth)."""
    used: set[str] = set()
    for const in code.co_consts:
        if isinstance(const, CodeType):
            used.update(const.co_names)
            used |= _names_used(const)
    return used
