"""Workers that outlive `engine serve` stop: no one would supervise them, and they hold the port.

`engine serve --workers N` sets ENGINE_SUPERVISOR_PID in the workers' environment.
Each worker checks five times a second that it is still that process's child;
when the supervisor has gone (even by `kill -9`, which gives it no chance to
stop them) the worker removes the reload directory, asks itself to shut down
as on SIGTERM (so the audit trail is flushed), and exits outright a second
and a half later if that has not finished: within 2 s of losing its parent.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger("engine.api")

_CHECK_EVERY = 0.2
_GRACE = 1.5


def watch_supervisor(signal_dir: Path | None) -> threading.Thread | None:
    """Start the check in a daemon thread when serving as a worker of `engine serve`; None otherwise."""
    text = os.environ.get("ENGINE_SUPERVISOR_PID", "")
    if not text.isdigit():
        return None
    thread = threading.Thread(target=_watch, args=(int(text), signal_dir), name="supervisor-watch", daemon=True)
    thread.start()
    return thread


def _watch(supervisor: int, signal_dir: Path | None) -> None:
    while os.getppid() == supervisor:
        time.sleep(_CHECK_EVERY)
    log.error("engine serve (process %d) has gone; this worker is stopping", supervisor)
    if signal_dir is not None:
        shutil.rmtree(signal_dir, ignore_errors=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_GRACE)
    os._exit(1)
