"""`engine bundle build|verify|keygen`: pack a checked, tested policy set for a fleet, check one received, make a signing key."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.bundle import (
    BundleError,
    build_bundle,
    load_bundle,
    load_private_key,
    load_public_key,
    read_bundle,
    write_key_pair,
)
from engine.errors import PolicyLoadError


def _fail(message: str, status: int = 2) -> int:
    print(f"engine bundle: {message}", file=sys.stderr)
    return status


def _policy_dir(path: str | None) -> Path:
    if path is not None:
        return Path(path)
    if Path("policies").is_dir():
        return Path("policies")
    from engine.loader import default_policy_dir

    return default_policy_dir()


def run_bundle(args: argparse.Namespace) -> int:
    """Exit 0 done, 1 the set or bundle was refused, 2 a usage or file problem."""
    if args.bundle_command == "build":
        return _build(args)
    if args.bundle_command == "keygen":
        return _keygen(args)
    return _verify(args)


def _keygen(args: argparse.Namespace) -> int:
    try:
        private, public = write_key_pair(args.prefix)
    except BundleError as err:
        return _fail(err.message)
    print(f"wrote {private} (keep it secret: it signs bundles) and {public} (give it to every replica)")
    return 0


def _build(args: argparse.Namespace) -> int:
    root = _policy_dir(args.path)
    try:
        key = load_private_key(args.sign) if args.sign else None
    except BundleError as err:
        return _fail(f"--sign: {err.message}")
    try:
        built = build_bundle(root, label=args.label, private_key=key)
    except PolicyLoadError as err:
        print(err.render(), file=sys.stderr)
        return _fail(f"{root} has errors; no bundle was written", 1)
    except BundleError as err:
        return _fail(f"{err.message}; no bundle was written", 1)
    staging = Path(f"{args.output}.partial")
    try:
        staging.write_bytes(built.data)
        os.replace(staging, args.output)  # a bundle server never serves half a file
    except OSError as err:
        return _fail(f"cannot write {args.output} ({err.strerror})")
    manifest = built.manifest
    print(f"wrote {args.output}: revision {manifest.revision}, label {manifest.label or '(none)'}, "
          f"{len(manifest.files)} files, {built.report.passed} tests passed, "
          f"{'signed' if key is not None else 'NOT signed'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        key = load_public_key(args.key) if args.key else None
        data = Path(args.file).read_bytes()
    except BundleError as err:
        return _fail(f"--key: {err.message}")
    except OSError as err:
        return _fail(f"{args.file}: cannot be read ({err.strerror})")
    try:
        bundle = read_bundle(data, key)
        policy = load_bundle(bundle)
    except PolicyLoadError as err:
        print(err.render(), file=sys.stderr)
        return _fail(f"{args.file}: the policy set in the bundle has errors", 1)
    except BundleError as err:
        return _fail(f"{args.file}: {err.message}", 1)
    manifest = bundle.manifest
    trust = "signature verified" if bundle.signed else "signature NOT checked (no --key)"
    print(f"{args.file}: revision {manifest.revision}, label {manifest.label or '(none)'}, built "
          f"{manifest.built_at}, {len(manifest.files)} files, {len(policy.rules)} rules; {trust}")
    return 0
