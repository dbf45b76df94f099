"""Policy bundles: a checked, tested policy set packed for a fleet, optionally signed.

A bundle is a gzipped tar holding `manifest.json`, optionally `manifest.sig`,
and the set's files under `policies/`:

    manifest.json   {"format", "revision", "label", "title", "built_at",
                     "files": [{"path", "sha256", "bytes"}, ...] in set order}
    manifest.sig    the Ed25519 signature of manifest.json's bytes, raw
    policies/...    every .policy and *.test.yaml file

The revision is the set's content hash, the same value as `policy_version` in
every decision, so "which revision is this replica serving" has one answer.

A bundle is data, never code: reading one unpacks regular files into memory
only (no links, devices, absolute paths or `..`), checks every file against
the manifest's hash and the manifest against its signature, and then parses
the policy text like any other. Nothing is unpickled or executed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from engine.errors import PolicyError
from engine.policy import from_sources, load
from engine.source import Source
from engine.testing.runner import run_test_files

FORMAT = "engine-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
POLICY_DIR = "policies"
TEST_SUFFIX = ".test.yaml"
# Far above any real policy set; a limit so a hostile or mistaken download cannot fill memory.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_FILES = 5_000


class BundleError(PolicyError):
    """A bundle that cannot be built, read or trusted; the message says which and why."""

    code = "bundle_error"


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of a bundle as its manifest lists it."""

    path: str  # relative, POSIX, under policies/
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a bundle holds and which revision of the set it is."""

    revision: str
    label: str | None
    title: str | None
    built_at: str
    files: tuple[BundleFile, ...]
    format: str = FORMAT

    def to_bytes(self) -> bytes:
        """The manifest as signed: canonical JSON, so the same manifest always signs the same."""
        data = {"format": self.format, "revision": self.revision, "label": self.label, "title": self.title,
                "built_at": self.built_at,
                "files": [{"path": f.path, "sha256": f.sha256, "bytes": f.size} for f in self.files]}
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Read a manifest; BundleError naming the field that is missing or wrong."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise BundleError(f"{MANIFEST} is not JSON: {err}") from None
        if not isinstance(raw, dict):
            raise BundleError(f"{MANIFEST} must be a JSON object")
        if raw.get("format") != FORMAT:
            raise BundleError(f"{MANIFEST}: format is {raw.get('format')!r}; this engine reads {FORMAT!r}")
        files = raw.get("files")
        if not isinstance(files, list) or not files:
            raise BundleError(f"{MANIFEST}: `files` must be a non-empty list")
        try:
            entries = tuple(BundleFile(_safe_name(str(f["path"])), str(f["sha256"]), int(f["bytes"]))
                            for f in files)
            return cls(revision=_text(raw, "revision"), label=raw.get("label"), title=raw.get("title"),
                       built_at=_text(raw, "built_at"), files=entries)
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{MANIFEST}: a file entry is malformed ({err})") from None

    @property
    def policy_files(self) -> tuple[BundleFile, ...]:
        return tuple(f for f in self.files if f.path.endswith(".policy"))


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise BundleError(f"{MANIFEST}: `{key}` must be a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle read and verified: its manifest and its files' bytes."""

    manifest: Manifest
    files: dict[str, bytes]
    signed: bool

    @property
    def revision(self) -> str:
        return self.manifest.revision

    def sources(self) -> list[Source]:
        """The policy files, in set order, shown as `policies/<path>` as authors know them."""
        return [Source(f"{POLICY_DIR}/{f.path}", _utf8(f.path, self.files[f.path]))
                for f in self.manifest.policy_files]


def _utf8(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BundleError(f"{POLICY_DIR}/{name}: not UTF-8 text (byte {err.start})") from None


# --- keys ---------------------------------------------------------------------


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key from a PEM file (`openssl genpkey -algorithm ed25519`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = _load_key(path, lambda data: load_pem_private_key(data, password=None))
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Any:
    """An Ed25519 public key from a PEM file (`openssl pkey -in KEY -pubout`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = _load_key(path, load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key")
    return key


def write_key_pair(prefix: str | Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair: PREFIX.pem (private, owner-only) and PREFIX.pub.pem; never overwrites."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = Path(f"{prefix}.pem"), Path(f"{prefix}.pub.pem")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    except FileExistsError:
        raise BundleError(f"{private} already exists; a signing key is never overwritten") from None
    except OSError as err:
        raise BundleError(f"{err.filename}: cannot be written ({err.strerror})") from None
    return private, public


def _load_key(path: str | Path, parse: Any) -> Any:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        return parse(data)
    except (ValueError, TypeError) as err:
        raise BundleError(f"{path}: not a PEM key ({err})") from None


# --- building -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Built:
    """A bundle built: its bytes, its manifest and the test report that let it through."""

    data: bytes
    manifest: Manifest
    report: Any  # engine.testing.runner.TestReport


def bundle_files(root: Path) -> list[Path]:
    """The files a bundle of `root` holds: .policy files and policy tests, in path order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix == ".policy" or p.name.endswith(TEST_SUFFIX)))


def build_bundle(path: str | Path, *, label: str | None = None, private_key: Any = None,
                 now: dt.datetime | None = None) -> Built:
    """Check and test the set at `path`, then pack it; signed when `private_key` is given.

    Raises PolicyLoadError when the set has errors and BundleError when its
    tests fail or it has none: a bundle always holds a set that passed.
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: not a directory of policy files")
    policy = load(root)
    files = bundle_files(root)
    tests = [p for p in files if p.name.endswith(TEST_SUFFIX)]
    if not tests:
        raise BundleError(f"{root}: no policy tests (*{TEST_SUFFIX}); a bundle is built only from a tested set")
    report = run_test_files(policy, tests)
    if report.exit_code() != 0:
        raise BundleError(f"{root}: the policy tests did not pass ({report.failed} failed, "
                          f"{len(report.file_problems)} test files unreadable); run `engine test {root}`")
    contents = {p.relative_to(root).as_posix(): p.read_bytes() for p in files}
    entries = tuple(BundleFile(name, hashlib.sha256(data).hexdigest(), len(data)) for name, data in contents.items())
    built_at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    manifest = Manifest(revision=policy.version, label=label if label is not None else policy.label,
                        title=policy.title, built_at=built_at, files=entries)
    return Built(pack(manifest, contents, private_key), manifest, report)


def pack(manifest: Manifest, contents: dict[str, bytes], private_key: Any = None) -> bytes:
    """The tar.gz of a manifest and files, with the manifest's signature when a key is given.

    Members carry fixed owners and times, so one set and manifest always pack alike.
    """
    manifest_bytes = manifest.to_bytes()
    members = [(MANIFEST, manifest_bytes)]
    if private_key is not None:
        members.append((SIGNATURE, private_key.sign(manifest_bytes)))
    members += [(f"{POLICY_DIR}/{name}", data) for name, data in contents.items()]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# --- reading ------------------------------------------------------------------


def _safe_name(name: str) -> str:
    """A member name that stays inside the bundle, or BundleError."""
    pure = PurePosixPath(name)
    if not name or "\\" in name or pure.is_absolute() or any(part in ("..", "") for part in name.split("/")):
        raise BundleError(f"unsafe path {name!r} in the bundle: paths must be relative, without `..`")
    return name


def _members(data: bytes) -> dict[str, bytes]:
    """Every regular file of the archive, in memory; links, devices and unsafe paths refused."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"the bundle is {len(data)} bytes; at most {MAX_BUNDLE_BYTES} are read")
    found: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                name = _safe_name(info.name)
                if info.isdir():
                    continue
                if not info.isfile():
                    raise BundleError(f"{name}: only regular files may be in a bundle (no links or devices)")
                total += info.size
                if total > MAX_BUNDLE_BYTES or len(found) >= MAX_FILES:
                    raise BundleError("the bundle unpacks to more than this engine reads")
                if name in found:
                    raise BundleError(f"{name} appears twice in the bundle")
                extracted = tar.extractfile(info)
                found[name] = extracted.read() if extracted is not None else b""
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BundleError(f"not a readable tar.gz bundle ({err})") from None
    return found


def read_bundle(data: bytes, public_key: Any = None) -> Bundle:
    """Read and verify a bundle: with `public_key`, it must be signed by the matching key.

    Every file must be listed in the manifest with its hash, and every listed
    file present; BundleError says what did not match.
    """
    members = _members(data)
    if MANIFEST not in members:
        raise BundleError(f"the bundle has no {MANIFEST}")
    manifest_bytes = members.pop(MANIFEST)
    signature = members.pop(SIGNATURE, None)
    if public_key is not None:
        _verify_signature(public_key, manifest_bytes, signature)
    manifest = Manifest.from_bytes(manifest_bytes)
    files: dict[str, bytes] = {}
    for entry in manifest.files:
        data_ = members.pop(f"{POLICY_DIR}/{entry.path}", None)
        if data_ is None:
            raise BundleError(f"{POLICY_DIR}/{entry.path} is listed in the manifest but missing")
        if hashlib.sha256(data_).hexdigest() != entry.sha256:
            raise BundleError(f"{POLICY_DIR}/{entry.path} does not match the manifest's hash (altered after building)")
        files[entry.path] = data_
    if members:
        raise BundleError(f"{min(members)} is in the bundle but not in its manifest")
    if not manifest.policy_files:
        raise BundleError("the bundle holds no .policy files")
    return Bundle(manifest, files, signature is not None and public_key is not None)


def _verify_signature(public_key: Any, manifest_bytes: bytes, signature: bytes | None) -> None:
    from cryptography.exceptions import InvalidSignature

    if signature is None:
        raise BundleError(f"the bundle is not signed ({SIGNATURE} missing) and a signing key is required")
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError("the bundle's signature does not match the key: it was altered or signed by "
                          "another key") from None


def load_bundle(bundle: Bundle) -> Any:
    """The bundle's policy set, checked and compiled; its version must be the manifest's revision."""
    policy = from_sources(bundle.sources())
    if policy.version != bundle.revision:
        raise BundleError(f"the bundle says revision {bundle.revision} but its files hash to {policy.version}")
    return policy
