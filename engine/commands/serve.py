"""`engine serve`: check the policy set (or poll a bundle), then run the decision service on uvicorn."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.commands.flags import AUDIT_FLAGS, CONNECTION_FLAGS, LOG_LEVELS, PATH_FLAGS
from engine.commands.policy_set import shown
from engine.errors import PolicyError, PolicyLoadError
from engine.policy import load
from engine.service.admission import Admission
from engine.service.app import create_app
from engine.service.audit import AuditError, AuditSettings
from engine.service.auth import parse_api_keys
from engine.service.bundles import FleetSettings, shown_source
from engine.service.logs import log_like_uvicorn


def _connection_settings(args: argparse.Namespace) -> None:
    """Put the flags given into the environment, where every worker's protocol reads them."""
    for flag, variable, _help, _default in CONNECTION_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            os.environ[variable] = str(value)


def _fail(message: str) -> int:
    print(f"engine serve: {message}", file=sys.stderr)
    return 2


def _audit_environment(args: argparse.Namespace) -> None:
    """Put the audit flags given into ENGINE_AUDIT_* (a flag wins over its variable)."""
    for name, variable in AUDIT_FLAGS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if value is True:
            value = "1"
        elif name in PATH_FLAGS and not str(value).startswith(("postgresql://", "postgres://")):
            value = os.path.abspath(value)
        os.environ[variable] = str(value)


def fleet_settings(args: argparse.Namespace) -> FleetSettings:
    """The bundle and readiness settings: each flag, else its ENGINE_* variable (ValueError if bad)."""
    env = FleetSettings.from_env()

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value

    return FleetSettings(bundle=pick("bundle", env.bundle), key=pick("bundle_key", env.key),
                         interval=pick("bundle_interval", env.interval), timeout=env.timeout,
                         require_revision=pick("require_revision", env.require_revision),
                         require_label=pick("require_label", env.require_label))


def _check_fleet(args: argparse.Namespace) -> str | None:
    try:
        fleet = fleet_settings(args)
    except ValueError as err:
        return str(err)
    if fleet.interval <= 0:
        return "--bundle-interval must be more than 0 seconds"
    if fleet.bundle and args.path:
        return "give either a policy PATH or --bundle, not both"
    if fleet.key:
        from engine.bundle import BundleError, load_public_key

        try:
            load_public_key(fleet.key)
        except BundleError as err:
            return f"--bundle-key: {err.message}"
    return None


def _check_settings(args: argparse.Namespace) -> str | None:
    """A message for the first setting that cannot work, or None."""
    if args.workers < 1:
        return "--workers must be at least 1"
    if args.log_level not in LOG_LEVELS:  # from ENGINE_LOG_LEVEL: argparse checks only what is typed
        return f"ENGINE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {args.log_level!r}"
    problem = _check_fleet(args)
    if problem:
        return problem
    try:
        parse_api_keys(os.environ.get("ENGINE_API_KEYS"))
    except ValueError as err:
        return f"ENGINE_API_KEYS: {err}"
    max_body = os.environ.get("ENGINE_MAX_BODY_BYTES")
    if max_body and not max_body.isdigit():
        return f"ENGINE_MAX_BODY_BYTES must be a number of bytes, not {max_body!r}"
    _connection_settings(args)
    try:
        from engine.clock import zone
        from engine.service.connections import GuardedHttp

        GuardedHttp.configure()
        zone()
        Admission.from_settings(date_callers=os.environ.get("ENGINE_DATE_CALLERS"),
                                key_agencies=os.environ.get("ENGINE_KEY_AGENCIES"), timezone=None,
                                max_string=int(os.environ.get("ENGINE_MAX_STRING") or 0) or None,
                                key_names=list(parse_api_keys(os.environ.get("ENGINE_API_KEYS"))))
    except ValueError as err:
        return str(err)
    try:
        settings = AuditSettings.from_env()
        if settings.target:
            from engine.service.audit.writer import open_sink

            open_sink(settings.target).close()  # can it be opened (created, connected to)?
    except AuditError as err:
        return str(err)
    return None


def serve(args: argparse.Namespace) -> int:
    """Serve decisions over HTTP until interrupted; 2 if the policy set cannot be loaded."""
    import uvicorn

    _audit_environment(args)
    problem = _check_settings(args)
    if problem:
        return _fail(problem)
    fleet = fleet_settings(args)
    if fleet.bundle:
        return _serve_bundle(args, fleet)
    where = shown(args.path)
    try:
        policy = load(args.path)
    except PolicyLoadError as err:
        print(err.render(), file=sys.stderr)
        return _fail(f"the policy set at {where} could not be loaded; nothing is served")
    except PolicyError as err:
        return _fail(f"the policy set at {where} could not be loaded: {err}")
    for warning in policy.warnings:
        print(warning.render(), file=sys.stderr)
    options = _uvicorn_options(args)
    if args.path is None:
        print(f"engine serve: no policy set was named and there is no policies/ directory here: "
              f"serving {where}", file=sys.stderr)
    print(f"engine serve: serving {where} ({policy.version}, {len(policy.rules)} rules) "
          f"on http://{args.host}:{args.port}", file=sys.stderr)
    if args.workers == 1:
        app = create_app(args.path, watch=not args.no_watch, policy=policy, fleet=fleet)
        uvicorn.run(app, **options)
        return 0
    os.environ["ENGINE_WATCH"] = "0" if args.no_watch else "1"
    if args.path:
        os.environ["ENGINE_POLICY_PATH"] = os.path.abspath(args.path)
    return _run_workers(args, fleet, options)


def _uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    level = getattr(args, "log_level", "info")
    log_like_uvicorn(level.upper())
    from engine.service.connections import GuardedHttp

    return {"host": args.host, "port": args.port, "timeout_graceful_shutdown": 10,
            "http": GuardedHttp, "timeout_keep_alive": _keep_alive(),
            "access_log": getattr(args, "access_log", False), "log_level": level}


def _serve_bundle(args: argparse.Namespace, fleet: FleetSettings) -> int:
    """Serve whatever bundle the poller activates; not ready until the first good one."""
    import uvicorn

    options = _uvicorn_options(args)
    signed = "signature required" if fleet.key else "UNSIGNED bundles accepted (no --bundle-key)"
    print(f"engine serve: serving the bundle at {shown_source(str(fleet.bundle))}, polled every "
          f"{fleet.interval:g}s ({signed}), on http://{args.host}:{args.port}", file=sys.stderr)
    if args.workers == 1:
        from engine.service.app import create_app

        uvicorn.run(create_app(None, fleet=fleet), **options)
        return 0
    os.environ["ENGINE_WATCH"] = "0"
    return _run_workers(args, fleet, options)


def _run_workers(args: argparse.Namespace, fleet: FleetSettings, options: dict[str, Any]) -> int:
    """Run `--workers N` processes; each builds its own app from the environment."""
    import uvicorn

    os.environ["ENGINE_LOG_LEVEL"] = options["log_level"].upper()
    os.environ.update(fleet.to_env())
    # Where a worker whose reload endpoint was called tells the others (api.reloading.ReloadSignal).
    sweep_signal_dirs()
    signal_dir = tempfile.mkdtemp(prefix=f"engine-reload-{os.getpid()}-")
    os.environ["ENGINE_RELOAD_SIGNAL"] = os.path.join(signal_dir, "reload")
    os.environ["ENGINE_SUPERVISOR_PID"] = str(os.getpid())  # workers exit when it is gone
    os.environ["ENGINE_WORKERS"] = str(args.workers)  # how many must confirm a reload
    # Where the workers keep their metrics, so a scrape of any of them counts them all.
    os.makedirs(os.path.join(signal_dir, "metrics"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(signal_dir, "metrics")
    try:
        uvicorn.run("engine.service.app:app_from_env", factory=True, workers=args.workers, **options)
    finally:
        shutil.rmtree(signal_dir, ignore_errors=True)
    return 0


def _keep_alive() -> float:
    from engine.service.connections import DEFAULT_KEEP_ALIVE_TIMEOUT, setting

    return setting("ENGINE_KEEP_ALIVE_TIMEOUT", DEFAULT_KEEP_ALIVE_TIMEOUT)


def sweep_signal_dirs() -> None:
    """Remove reload directories left by an `engine serve` that was killed outright."""
    from engine.service.reloading import alive

    for entry in Path(tempfile.gettempdir()).glob("engine-reload-*-*"):
        pid = entry.name.split("-")[2]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)

