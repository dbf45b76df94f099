"""The PostgreSQL trail, for many replicas: the same lines, one row each, one transaction per write.

Tables (created when missing): `audit_entries` (instance, seq, time,
decision_id, line; one row per entry, the line's exact text so that
verification checks the same bytes as for a file), `audit_checkpoints` and
`audit_policies`. Needs psycopg 3 (`pip install 'sharing-policy-engine[postgresql]'`).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

from engine.service.audit.checkpoints import Checkpoints
from engine.service.audit.entries import SUFFIX_LENGTH, Hasher, chain_of
from engine.service.audit.filesink import AuditError

_DECISION_ID = re.compile(rb'"decision_id":"([^"\\]*)"')

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_entries (
    instance text NOT NULL, seq bigint NOT NULL, time text NOT NULL, decision_id text,
    line text NOT NULL, PRIMARY KEY (instance, seq));
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (time);
CREATE INDEX IF NOT EXISTS audit_entries_decision ON audit_entries (decision_id);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id bigserial PRIMARY KEY, instance text NOT NULL, seq bigint NOT NULL, line text NOT NULL);
CREATE TABLE IF NOT EXISTS audit_policies (version text PRIMARY KEY, document text NOT NULL);
"""


def psycopg_errors() -> tuple[type[BaseException], ...]:
    """What psycopg raises when the database cannot be reached or written."""
    import psycopg

    return (psycopg.Error, OSError)


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise AuditError("a postgresql:// audit trail needs psycopg 3: "
                         "pip install 'sharing-policy-engine[postgresql]'") from None
    try:
        return psycopg.connect(url, connect_timeout=5)
    except psycopg.Error as err:
        raise AuditError(f"cannot connect to the audit database: {str(err).strip()}") from None


def _shown(url: str) -> str:
    """The URL without a password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}@{tail}"


class PostgresSink:
    """Appends entries in one transaction per write; reconnects after a failure."""

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.Lock()  # one connection; the writer thread and the commit thread take turns
        self._connection = _connect(url)
        try:
            with self._connection.transaction():
                self._connection.execute(SCHEMA)
        except psycopg_errors() as err:
            raise AuditError(f"cannot prepare the audit tables in {_shown(url)}: {str(err).strip()}") from None

    def describe(self) -> str:
        return _shown(self.url)

    def _live(self) -> Any:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = _connect(self.url)
        return self._connection

    def append(self, data: bytes) -> str | None:
        rows = []
        for line in data.splitlines():
            chain = chain_of(line)
            if chain is None:
                raise AuditError("not an audit line")  # the writer made it: cannot happen
            found = _DECISION_ID.search(line)
            when = line[-SUFFIX_LENGTH - 28:-SUFFIX_LENGTH - 1].decode()  # "time" is the last field: fixed width
            rows.append((chain[1], chain[2], when, found.group(1).decode() if found else None, line.decode()))
        if not rows:
            return None
        try:
            with self._lock:
                self._copy(rows)
        except (AuditError, *psycopg_errors()) as err:  # type: ignore[misc]
            self._drop()
            raise OSError(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None
        return None

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        connection = self._live()
        with connection.transaction(), connection.cursor() as cursor, \
                cursor.copy("COPY audit_entries (instance, seq, time, decision_id, line) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(*psycopg_errors()):  # already broken: closing is all that is left
                self._connection.close()
        self._connection = None

    def sync(self) -> None:  # a committed transaction is already durable
        return None

    def reopen(self) -> None:
        return None

    def checkpoint(self, line: bytes) -> None:
        fields = json.loads(line)
        with self._lock, self._live().transaction():
            self._connection.execute("INSERT INTO audit_checkpoints (instance, seq, line) VALUES (%s, %s, %s)",
                               (fields["instance"], fields["seq"], line.decode().rstrip("\n")))

    def has_policy(self, version: str) -> bool:
        with self._lock, self._live().transaction():
            row = self._connection.execute("SELECT 1 FROM audit_policies WHERE version = %s", (version,)).fetchone()
        return row is not None

    def store_policy(self, version: str, document: dict[str, Any]) -> None:
        with self._lock, self._live().transaction():
            self._connection.execute("INSERT INTO audit_policies (version, document) VALUES (%s, %s) "
                               "ON CONFLICT (version) DO NOTHING", (version, json.dumps(document)))

    def close(self) -> None:
        self._drop()


def database_lines(url: str, *, by_instance: bool) -> Iterator[tuple[str, bytes]]:
    """Every entry line, streamed with a server-side cursor (by instance and seq, or by time)."""
    connection = _connect(url)
    order = "instance, seq" if by_instance else "time, instance, seq"
    try:
        with connection.transaction(), connection.cursor(name="audit_lines") as cursor:
            cursor.itersize = 5000
            cursor.execute(f"SELECT instance, seq, line FROM audit_entries ORDER BY {order}")
            for instance, seq, line in cursor:
                yield f"{instance}#{seq}", line.encode() + b"\n"
    finally:
        connection.close()


def database_checkpoints(url: str, checkpoints: Checkpoints, hasher: Hasher) -> bool:
    connection = _connect(url)
    try:
        rows = connection.execute("SELECT line FROM audit_checkpoints ORDER BY id").fetchall()
    finally:
        connection.close()
    checkpoints.read((row[0].encode() for row in rows), "audit_checkpoints", hasher)
    return bool(rows)


def database_policy(url: str, version: str) -> dict[str, Any] | None:
    connection = _connect(url)
    try:
        row = connection.execute("SELECT document FROM audit_policies WHERE version = %s", (version,)).fetchone()
    finally:
        connection.close()
    document: dict[str, Any] | None = json.loads(row[0]) if row else None
    return document
