"""`engine serve`'s flags that set ENGINE_* variables for every worker: the audit trail and connections.

Kept apart from the commands that use them, so that building the `engine`
command line imports neither the web service nor the audit trail.
"""

from __future__ import annotations

import argparse

# `engine serve` flags for the audit trail, and the variables they set (so every worker reads them).
AUDIT_FLAGS = {
    "audit_log": "ENGINE_AUDIT_LOG", "audit_key_file": "ENGINE_AUDIT_KEY_FILE", "audit_fsync": "ENGINE_AUDIT_FSYNC",
    "audit_checkpoints": "ENGINE_AUDIT_CHECKPOINTS", "audit_checkpoint_seconds": "ENGINE_AUDIT_CHECKPOINT_SECONDS",
    "audit_rotate_size": "ENGINE_AUDIT_ROTATE_SIZE", "audit_rotate_daily": "ENGINE_AUDIT_ROTATE_DAILY",
    "audit_on_failure": "ENGINE_AUDIT_ON_FAILURE", "audit_omit": "ENGINE_AUDIT_OMIT",
}
PATH_FLAGS = ("audit_log", "audit_key_file", "audit_checkpoints")


def add_audit_flags(parser: argparse.ArgumentParser) -> None:
    """The audit trail's flags of `engine serve` (--audit-log is added with the others)."""
    parser.add_argument("--audit-fsync", action="store_true", default=None,
                        help="fsync every write: entries survive a power cut, not only a crash")
    parser.add_argument("--audit-key-file", default=None, metavar="FILE",
                        help="file holding the audit key (or ENGINE_AUDIT_KEY): HMAC-chained entries, signed checkpoints")
    parser.add_argument("--audit-checkpoints", default=None, metavar="FILE",
                        help="where checkpoints go (default: FILE.checkpoints beside the trail)")
    parser.add_argument("--audit-checkpoint-seconds", default=None, metavar="SECONDS")
    parser.add_argument("--audit-rotate-size", default=None, metavar="SIZE", help="start a new file beyond this size (100M)")
    parser.add_argument("--audit-rotate-daily", action="store_true", default=None, help="start a new file each day")
    parser.add_argument("--audit-on-failure", choices=["refuse", "continue"], default=None,
                        help="while the trail cannot be written: refuse decisions with 503 (default) or keep deciding")
    parser.add_argument("--audit-omit", default=None, metavar="PATHS",
                        help="request attributes left out of the trail, comma-separated (requester.team)")


# --flag, its ENGINE_* variable and default, for the connection settings (engine.service.connections).
CONNECTION_FLAGS = [
    ("--keep-alive-timeout", "ENGINE_KEEP_ALIVE_TIMEOUT", "seconds an idle keep-alive connection stays open", "5"),
    ("--header-timeout", "ENGINE_HEADER_TIMEOUT", "seconds a client has to send a request's headers", "10"),
    ("--body-timeout", "ENGINE_BODY_TIMEOUT", "seconds a client has to send a request's body", "30"),
    ("--max-connections", "ENGINE_MAX_CONNECTIONS", "open connections per worker; more are answered 503", "1000"),
]


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """`engine serve`'s flags for connection timeouts and the connection cap."""
    for flag, variable, help, default in CONNECTION_FLAGS:
        parser.add_argument(flag, default=None, metavar="N", help=f"{help} (default {default}; {variable})")


# `engine serve --log-level` (ENGINE_LOG_LEVEL).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
