"""The audit trail's settings, from ENGINE_AUDIT_* variables (which `engine serve` flags set)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.service.audit.filesink import AuditError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes from `500000`, `100M`, `1G` (ValueError otherwise)."""
    cleaned = text.strip().lower().removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    if not number.isdigit():
        raise ValueError(f"a size like 100M, not {text!r}")
    return int(number) * _UNITS[unit]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AuditSettings:
    """Where the trail goes and how it is written."""

    target: str | None = None
    key: bytes | None = None
    fsync: bool = False
    checkpoints: str | None = None
    checkpoint_seconds: float = 10.0
    rotate_bytes: int = 0
    rotate_daily: bool = False
    on_failure: str = "refuse"
    omit: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuditSettings:
        """The settings from ENGINE_AUDIT_*; AuditError naming the variable that cannot work."""
        env = os.environ if env is None else env
        key = env.get("ENGINE_AUDIT_KEY") or None
        key_file = env.get("ENGINE_AUDIT_KEY_FILE")
        if key_file and not key:
            try:
                with open(key_file, encoding="utf-8") as handle:
                    key = handle.read().strip() or None
            except OSError as err:
                raise AuditError(f"ENGINE_AUDIT_KEY_FILE: cannot read {key_file}: {err.strerror}") from None
        try:
            rotate = parse_size(env["ENGINE_AUDIT_ROTATE_SIZE"]) if env.get("ENGINE_AUDIT_ROTATE_SIZE") else 0
        except ValueError as err:
            raise AuditError(f"ENGINE_AUDIT_ROTATE_SIZE must be {err}") from None
        try:
            seconds = float(env.get("ENGINE_AUDIT_CHECKPOINT_SECONDS") or 10.0)
        except ValueError:
            raise AuditError("ENGINE_AUDIT_CHECKPOINT_SECONDS must be a number of seconds") from None
        on_failure = (env.get("ENGINE_AUDIT_ON_FAILURE") or "refuse").strip().lower()
        if on_failure not in ("refuse", "continue"):
            raise AuditError(f"ENGINE_AUDIT_ON_FAILURE must be refuse or continue, not {on_failure!r}")
        omit = tuple(part.strip() for part in (env.get("ENGINE_AUDIT_OMIT") or "").split(",") if part.strip())
        return cls(target=env.get("ENGINE_AUDIT_LOG") or None, key=key.encode() if key else None,
                   fsync=_flag(env.get("ENGINE_AUDIT_FSYNC")), checkpoints=env.get("ENGINE_AUDIT_CHECKPOINTS") or None,
                   checkpoint_seconds=seconds, rotate_bytes=rotate,
                   rotate_daily=_flag(env.get("ENGINE_AUDIT_ROTATE_DAILY")), on_failure=on_failure, omit=omit)

    def open(self, target: str | os.PathLike[str] | None = None) -> Any:
        """The AuditLog these settings describe (for `target`, or the configured one)."""
        from engine.service.audit.writer import AuditLog

        where = target if target is not None else self.target
        if where is None:
            raise AuditError("no audit trail is set (ENGINE_AUDIT_LOG)")
        return AuditLog(where, key=self.key, fsync=self.fsync,
                        checkpoints=self.checkpoints, checkpoint_seconds=self.checkpoint_seconds,
                        rotate_bytes=self.rotate_bytes, rotate_daily=self.rotate_daily, omit_paths=self.omit,
                        keep_deciding=self.on_failure == "continue")
