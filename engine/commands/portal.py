"""`engine portal`: the governance portal alone, over a folder being drafted, on this machine only."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.portal.app import create_portal_app

# The portal without the service shows a draft to its author: it listens on
# loopback only, so no one else on the network can read the draft.
HOST = "127.0.0.1"


def run_portal(args: argparse.Namespace) -> int:
    """Serve the portal until interrupted; 2 when the port cannot be used."""
    import uvicorn

    path = args.path if args.path is not None else ("policies" if Path("policies").is_dir() else None)
    if path is not None and not Path(path).exists():
        print(f"engine portal: {path}: no such file or directory", file=sys.stderr)
        return 2
    shown = path if path is not None else "the built-in example policies"
    print(f"engine portal: showing {shown} at http://{HOST}:{args.port}/portal/ (Ctrl-C to stop)", file=sys.stderr)
    app = create_portal_app(path, admin_token=os.environ.get("ENGINE_ADMIN_TOKEN") or None)
    try:
        uvicorn.run(app, host=HOST, port=args.port, log_level=args.log_level)
    except SystemExit as exc:  # uvicorn exits when the port is taken
        return 2 if exc.code else 0
    return 0
