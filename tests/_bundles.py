"""A small policy set with tests, Ed25519 keys, and bundles of it, for the bundle and fleet tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# The server tests' set (with its title "Server test set"), with policy tests added.
from test_server import PERMITTED, RULES, VOCABULARY  # noqa: F401

from engine.bundle import build_bundle

TESTS = """\
defaults:
  context: {date: 2025-06-01}
cases:
  - name: a social worker may share health data to protect a child at risk
    request:
      requester: {role: social_worker, agency: council}
      action: share
      resource: {category: health, classification: official, owner: nhs}
      purpose: safeguarding.children
      context: {risk_of_harm: true}
    expect: permit
    by: child_protection
  - name: never for marketing
    request:
      requester: {role: social_worker, agency: council}
      action: share
      resource: {category: health, classification: official, owner: nhs}
      purpose: marketing
    expect: deny
    by: no_marketing
"""


def write_set(directory: Path, *, version: str = "1", rules: str = RULES, tests: str = TESTS) -> Path:
    """A policy set with its tests in `directory`; `version` is the set's label."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "10_vocabulary.policy").write_text(VOCABULARY.replace('version "1"', f'version "{version}"'),
                                                    encoding="utf-8")
    (directory / "20_rules.policy").write_text(rules, encoding="utf-8")
    (directory / "set.test.yaml").write_text(tests, encoding="utf-8")
    return directory


def new_key() -> Any:
    return Ed25519PrivateKey.generate()


def write_keys(key: Any, directory: Path, name: str = "signing") -> tuple[Path, Path]:
    """The key's private and public PEM files, as openssl would write them."""
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def bundle_of(tmp: Path, version: str, key: Any = None, **changes: str) -> tuple[bytes, str]:
    """A bundle of the test set labelled `version`, and its revision."""
    built = build_bundle(write_set(tmp / f"set-{version}", version=version, **changes), private_key=key)
    return built.data, built.manifest.revision



def _bench_fleet() -> Any:
    """bench/fleet.py, the fleet harness, which the bundle tests share."""
    name = "bench_fleet"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "bench" / "fleet.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fleet = _bench_fleet()
BundleServer = fleet.BundleServer
