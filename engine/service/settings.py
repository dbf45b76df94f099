"""Operator settings read from the environment: one way to read a positive number, one way to refuse it."""

from __future__ import annotations

import os
from collections.abc import Mapping


def positive_number(name: str, default: float, env: Mapping[str, str] | None = None, unit: str = "") -> float:
    """`name`'s value in `env` (default: the environment), or `default` when unset; ValueError naming it otherwise."""
    text = (os.environ if env is None else env).get(name)
    if not text:
        return default
    what = f" {unit}" if unit else ""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number{' of' + what if unit else ''}, not {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be more than 0{what}, not {text!r}")
    return value
