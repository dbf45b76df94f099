"""Bundles: built only from a set that checks and passes its tests; read only when every byte verifies."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from _bundles import RULES, TESTS, new_key, write_keys, write_set

import engine
from engine.bundle import (
    MANIFEST,
    BundleError,
    Manifest,
    build_bundle,
    load_bundle,
    pack,
    read_bundle,
)
from engine.commands.main import main
from engine.errors import PolicyLoadError


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _tar(entries: Sequence[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return out.getvalue()


def _unpacked(data: bytes) -> tuple[Manifest, dict[str, bytes]]:
    members = _members(data)
    manifest = Manifest.from_bytes(members[MANIFEST])
    return manifest, {name.removeprefix("policies/"): body for name, body in members.items()
                      if name.startswith("policies/")}


def test_the_manifest_names_the_revision_served_and_hashes_every_file(tmp_path: Path) -> None:
    root = write_set(tmp_path / "set", version="2025.1")
    built = build_bundle(root)
    manifest, files = _unpacked(built.data)
    assert manifest == built.manifest
    assert manifest.revision == engine.load(root).version
    assert manifest.label == "2025.1" and manifest.title == "Server test set"
    assert [f.path for f in manifest.files] == ["10_vocabulary.policy", "20_rules.policy", "set.test.yaml"]
    for entry in manifest.files:
        on_disk = (root / entry.path).read_bytes()
        assert entry.sha256 == hashlib.sha256(on_disk).hexdigest() and entry.size == len(on_disk)
        assert files[entry.path] == on_disk
    policy = load_bundle(read_bundle(built.data))
    assert policy.version == manifest.revision
    assert [str(path) for path in policy.files] == ["policies/10_vocabulary.policy", "policies/20_rules.policy"]


def test_a_label_given_at_build_time_wins(tmp_path: Path) -> None:
    assert build_bundle(write_set(tmp_path / "set"), label="release-7").manifest.label == "release-7"


def test_a_set_with_errors_is_refused_with_file_and_line(tmp_path: Path) -> None:
    root = write_set(tmp_path / "set", rules=RULES.replace("role social_worker", "role social_wrker"))
    with pytest.raises(PolicyLoadError) as caught:
        build_bundle(root)
    assert "20_rules.policy:3:" in caught.value.render() and "social_wrker" in caught.value.render()


@pytest.mark.parametrize("tests, message", [
    (TESTS.replace("expect: permit", "expect: deny"), "1 failed"),
    ("cases: [", "1 test files unreadable"),
    (None, "no policy tests"),
])
def test_a_set_whose_tests_fail_or_are_missing_is_refused(tmp_path: Path, tests: str | None, message: str) -> None:
    root = write_set(tmp_path / "set", tests=tests or "")
    if tests is None:
        (root / "set.test.yaml").unlink()
    with pytest.raises(BundleError, match=message):
        build_bundle(root)


def test_a_signed_bundle_verifies_only_with_its_own_key(tmp_path: Path) -> None:
    key, other = new_key(), new_key()
    data = build_bundle(write_set(tmp_path / "set"), private_key=key).data
    assert read_bundle(data, key.public_key()).signed
    with pytest.raises(BundleError, match="signature does not match"):
        read_bundle(data, other.public_key())
    unsigned = build_bundle(tmp_path / "set").data
    with pytest.raises(BundleError, match="not signed"):
        read_bundle(unsigned, key.public_key())
    assert not read_bundle(unsigned).signed  # no key required: the hashes are still checked


def test_tampering_after_signing_is_detected(tmp_path: Path) -> None:
    key = new_key()
    built = build_bundle(write_set(tmp_path / "set"), private_key=key)
    manifest, files = _unpacked(built.data)
    signature = _members(built.data)["manifest.sig"]
    # A rule file changed, manifest and signature kept: the file's hash gives it away.
    changed = dict(files, **{"20_rules.policy": files["20_rules.policy"].replace(b"deny no_marketing", b"permit no_marketing")})
    altered_file = _tar([(MANIFEST, manifest.to_bytes()), ("manifest.sig", signature)]
                        + [(f"policies/{name}", body) for name, body in changed.items()])
    with pytest.raises(BundleError, match="20_rules.policy does not match the manifest's hash"):
        read_bundle(altered_file, key.public_key())
    # The manifest rewritten to match the changed file: the signature gives it away.
    rehashed = dataclasses.replace(manifest, files=tuple(
        dataclasses.replace(f, sha256=hashlib.sha256(changed[f.path]).hexdigest()) for f in manifest.files))
    altered_manifest = _tar([(MANIFEST, rehashed.to_bytes()), ("manifest.sig", signature)]
                            + [(f"policies/{name}", body) for name, body in changed.items()])
    with pytest.raises(BundleError, match="signature does not match"):
        read_bundle(altered_manifest, key.public_key())


def test_a_revision_that_is_not_the_files_hash_is_refused(tmp_path: Path) -> None:
    manifest, files = _unpacked(build_bundle(write_set(tmp_path / "set")).data)
    lying = pack(dataclasses.replace(manifest, revision="sha256:0000000000000000"), files)
    with pytest.raises(BundleError, match="says revision sha256:0000000000000000 but its files hash to"):
        load_bundle(read_bundle(lying))


def _link(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, "/etc/passwd"
    return info


@pytest.mark.parametrize("entry, message", [
    (("policies/../../evil.policy", b"x"), "unsafe path"),
    (("/etc/evil.policy", b"x"), "unsafe path"),
    (_link("policies/link.policy", tarfile.SYMTYPE), "only regular files"),
    (_link("policies/hard.policy", tarfile.LNKTYPE), "only regular files"),
    (("policies/extra.policy", b"permit all {}"), "not in its manifest"),
])
def test_unsafe_or_unlisted_members_are_refused(tmp_path: Path, entry: object, message: str) -> None:
    members = _members(build_bundle(write_set(tmp_path / "set")).data)
    data = _tar([*members.items(), entry])  # type: ignore[list-item]
    with pytest.raises(BundleError, match=message):
        read_bundle(data)


@pytest.mark.parametrize("data, message", [
    (b"not a tarball", "not a readable tar.gz"),
    (_tar([("policies/a.policy", b"x")]), "no manifest.json"),
    (_tar([(MANIFEST, b"{")]), "not JSON"),
    (_tar([(MANIFEST, json.dumps({"format": "other/9"}).encode())]), "this engine reads"),
])
def test_what_is_not_a_bundle_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        read_bundle(data)


def test_the_bundle_command_builds_signs_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_set(tmp_path / "set")
    private, public = write_keys(new_key(), tmp_path)
    _, other = write_keys(new_key(), tmp_path, "other")
    out = tmp_path / "policy.tar.gz"
    assert main(["bundle", "build", str(root), "-o", str(out), "--sign", str(private)]) == 0
    assert "2 tests passed, signed" in capsys.readouterr().out
    assert main(["bundle", "verify", str(out), "--key", str(public)]) == 0
    assert f"revision {engine.load(root).version}" in capsys.readouterr().out
    assert main(["bundle", "verify", str(out), "--key", str(other)]) == 1
    assert "signature does not match" in capsys.readouterr().err
    assert main(["bundle", "build", str(root), "-o", str(out), "--sign", str(public)]) == 2
    assert "not a PEM key" in capsys.readouterr().err


def test_the_bundle_command_writes_nothing_for_a_refused_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_set(tmp_path / "set", tests=TESTS.replace("expect: permit", "expect: deny"))
    out = tmp_path / "policy.tar.gz"
    assert main(["bundle", "build", str(root), "-o", str(out)]) == 1
    assert "no bundle was written" in capsys.readouterr().err
    assert not out.exists()


def test_keygen_makes_a_pair_that_signs_and_verifies_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "signing"
    assert main(["bundle", "keygen", str(prefix)]) == 0
    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub.pem"
    assert private.stat().st_mode & 0o077 == 0  # the private key is the owner's only
    out = tmp_path / "policy.tar.gz"
    assert main(["bundle", "build", str(write_set(tmp_path / "set")), "-o", str(out), "--sign", str(private)]) == 0
    assert main(["bundle", "verify", str(out), "--key", str(public)]) == 0
    before = private.read_bytes()
    assert main(["bundle", "keygen", str(prefix)]) == 2
    assert "never overwritten" in capsys.readouterr().err and private.read_bytes() == before
