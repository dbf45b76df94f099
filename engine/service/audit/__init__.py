"""The audit trail: every decision (and refused request) as a hash-chained entry.

Parts: `entries` (what a line holds, chaining), `writer` (AuditLog: group
commit before answering, failing closed, recovering), `filesink` and
`pgsink` (where lines go), `checkpoints`, `verify`, `trails` (finding a
trail's files, checkpoints and policy versions), `query` (answering
governance questions and explaining past decisions), `settings`.
"""

from engine.service.audit.entries import GENESIS, EntryError, canonical
from engine.service.audit.filesink import AuditError
from engine.service.audit.settings import AuditSettings
from engine.service.audit.verify import verify
from engine.service.audit.writer import AuditLog, AuditUnavailable

__all__ = ["GENESIS", "AuditError", "AuditLog", "AuditSettings", "AuditUnavailable", "EntryError", "canonical",
           "verify"]
