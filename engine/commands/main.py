"""The `engine` command: one thin cmd_<name>() per subcommand.

Each subcommand parses its arguments here and hands the work to the module of
its stage; every one returns the process exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from engine.commands import policy_set
from engine.commands.flags import LOG_LEVELS, add_audit_flags, add_connection_flags

Command = Callable[[argparse.Namespace], int]


def cmd_check(args: argparse.Namespace) -> int:
    from engine.commands.check import run_check

    return run_check(args.path, args.format)


def cmd_decide(args: argparse.Namespace) -> int:
    from engine.commands.decide import run_decide

    return run_decide(args)


def cmd_test(args: argparse.Namespace) -> int:
    from engine.commands.test import run_tests

    return run_tests(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.commands.serve import serve

    return serve(args)


def cmd_portal(args: argparse.Namespace) -> int:
    from engine.commands.portal import run_portal

    return run_portal(args)


def cmd_bundle(args: argparse.Namespace) -> int:
    from engine.commands.bundle import run_bundle

    return run_bundle(args)


def cmd_audit(args: argparse.Namespace) -> int:
    from engine.commands.audit import run_audit

    return run_audit(args)


def cmd_matrix(args: argparse.Namespace) -> int:
    from engine.commands.matrix import run_matrix

    return run_matrix(args)


def cmd_diff(args: argparse.Namespace) -> int:
    from engine.commands.diff import run_diff

    return run_diff(args)


def cmd_fmt(args: argparse.Namespace) -> int:
    from engine.commands.fmt import run_fmt

    return run_fmt(args)


def cmd_doc(args: argparse.Namespace) -> int:
    from engine.commands.doc import run_doc

    return run_doc(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="Policy-as-code access decisions.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, fn: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=fn)
        if name in policy_set.TAKES_EXAMPLE:
            p.add_argument("--example", action="store_true",
                           help=f"use {policy_set.EXAMPLE_NAME} (the default only for `serve`, without policies/ here)")
        return p

    p = add("check", cmd_check, "Check a policy set and report every mistake.")
    p.add_argument("path", nargs="?", default=None, help="policy directory or file (default: policies/ here)")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = add("decide", cmd_decide, "Decide one request (JSON or YAML file, or - for standard input).")
    p.add_argument("request", help="request file, or - to read standard input")
    p.add_argument("--policy", default=None, help="policy directory (default: policies/ here)")
    p.add_argument("--explain", action="store_true", help="print the decision as text a caseworker can read")

    p = add("test", cmd_test, "Run the policy tests (*.test.yaml) of a policy set.")
    p.add_argument("path", nargs="?", default=None, help="policy directory (default: policies/ here)")
    p.add_argument("-k", dest="keyword", default=None, help="run only cases whose name contains TEXT")
    p.add_argument("-v", "--verbose", action="store_true", help="show every case")
    p.add_argument("--coverage-min", type=float, default=None, metavar="PCT")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = add("serve", cmd_serve, "Serve decisions over HTTP.")
    p.add_argument("path", nargs="?", default=os.environ.get("ENGINE_POLICY_PATH") or None,
                   help="policy directory (default: ENGINE_POLICY_PATH, else policies/ here, else the built-in example set)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--audit-log", default=None, metavar="FILE|URL", help="decision trail: a file or postgresql:// URL")
    add_audit_flags(p)
    p.add_argument("--no-watch", action="store_true", default=os.environ.get("ENGINE_WATCH", "1").strip() == "0",
                   help="do not reload when policy files change (ENGINE_WATCH=0)")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request (off: decisions go to the audit log)")
    p.add_argument("--log-level", default=(os.environ.get("ENGINE_LOG_LEVEL") or "info").strip().lower(),
                   choices=LOG_LEVELS, help="the service's log level (ENGINE_LOG_LEVEL)")
    add_connection_flags(p)
    p.add_argument("--bundle", default=None, metavar="URL|FILE", help="serve the policy bundle polled from here")
    p.add_argument("--bundle-key", default=None, metavar="PUB", help="Ed25519 public key (PEM): refuse bundles it did not sign")
    p.add_argument("--bundle-interval", type=float, default=None, metavar="SECONDS", help="seconds between polls (default 30)")
    p.add_argument("--require-revision", default=None, metavar="REV", help="not ready until serving this revision")
    p.add_argument("--require-label", default=None, metavar="LABEL", help="not ready until serving this label")

    p = add("bundle", cmd_bundle, "Build or verify a policy bundle for a fleet.")
    bundle = p.add_subparsers(dest="bundle_command", metavar="ACTION")
    bundle.required = True
    b = bundle.add_parser("build", help="Check and test a policy set, then pack it as a bundle.")
    b.add_argument("path", nargs="?", default=None, help="policy directory (default: policies/)")
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the bundle (.tar.gz)")
    b.add_argument("--label", default=None, help="the bundle's label (default: the set's version header)")
    b.add_argument("--sign", default=None, metavar="KEY", help="Ed25519 private key (PEM) to sign the manifest")
    b = bundle.add_parser("verify", help="Verify a bundle's files, signature and revision.")
    b.add_argument("file")
    b.add_argument("--key", default=None, metavar="PUB", help="Ed25519 public key (PEM); the bundle must be signed by it")
    b = bundle.add_parser("keygen", help="Make an Ed25519 key pair for signing bundles: PREFIX.pem and PREFIX.pub.pem.")
    b.add_argument("prefix", metavar="PREFIX")

    p = add("portal", cmd_portal, "Show a policy folder in the governance portal, on this machine only.")
    p.add_argument("path", nargs="?", default=None, help="policy directory (default: policies/)")
    p.add_argument("--port", type=int, default=int(os.environ.get("ENGINE_PORTAL_PORT") or 8080))
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])

    p = add("audit", cmd_audit, "Work with the audit trail.")
    audit = p.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.required = True
    key_help = "file holding the audit key (default: ENGINE_AUDIT_KEY)"
    v = audit.add_parser("verify", help="Verify a trail's chains against its checkpoints.")
    v.add_argument("trail", nargs="?", default=None, help="file, directory or postgresql:// URL (ENGINE_AUDIT_LOG)")
    v.add_argument("--key-file", default=None, metavar="FILE", help=key_help)
    v.add_argument("--checkpoints", default=None, metavar="FILE", help="checkpoint file (default: beside the trail)")
    q = audit.add_parser("query", help="Who was shown what: decisions by record, person or agency.")
    q.add_argument("trail", nargs="?", default=None, help="file, directory or postgresql:// URL (ENGINE_AUDIT_LOG)")
    for name, what in (("resource", "resource.id"), ("requester", "requester.id"),
                       ("agency", "the requester's agency"), ("owner", "the resource's owning agency")):
        q.add_argument(f"--{name}", default=None, metavar="ID", help=f"only decisions with this {what}")
    q.add_argument("--since", default=None, metavar="DATE", help="decided on or after (2025-06-01, or a time)")
    q.add_argument("--until", default=None, metavar="DATE", help="decided on or before")
    q.add_argument("--decision", choices=["permit", "deny"], default=None)
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    e = audit.add_parser("explain", help="Decide a past decision again with the policy and date that made it.")
    e.add_argument("decision_id")
    e.add_argument("--trail", default=None, help="file, directory or postgresql:// URL (ENGINE_AUDIT_LOG)")

    p = add("matrix", cmd_matrix, "Who can see what, for which purpose, in every context and on every date.")
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--date", default=None, help="fix the date (default: every date is tried)")
    p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a fact (default: every value is tried)")
    p.add_argument("--format", choices=["text", "md", "csv", "html", "json"], default="text")

    p = add("diff", cmd_diff, "What changes between two policy sets.")
    p.add_argument("old", nargs="?", default=None)
    p.add_argument("new", nargs="?", default=None)
    p.add_argument("--git", default=None, metavar="REV")
    p.add_argument("--date", default=None, help="fix the date (default: every date is tried)")
    p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a fact (default: every value is tried)")
    p.add_argument("--format", choices=["text", "md", "json"], default="text")

    p = add("fmt", cmd_fmt, "Lay out policy files canonically.")
    from engine.commands.fmt import HELP as fmt_help

    p.epilog = fmt_help
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--check", action="store_true")
    p.add_argument("--diff", action="store_true")

    p = add("doc", cmd_doc, "The policy set as a plain-English document.")
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--format", choices=["md", "html"], default="md")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        policy_set.resolve(args)
    except policy_set.NoPolicySet as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        status: int = args.func(args)
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
