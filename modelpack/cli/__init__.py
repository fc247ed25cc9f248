"""The command line: ``modelpack demo | inspect | verify | convert | diff | schema`` (also
``python -m modelpack``). ``inspect`` and ``verify`` take MXNet's files too.

Exit codes: 0 ok, 1 a check found problems, 2 a user error (a missing or unreadable file, bad
arguments). A user's mistake is one ``modelpack: error: …`` line, never a traceback.
Reporting commands take ``--json`` for machines. Each command imports what it needs when it
runs (the function-level imports below), so ``modelpack --help`` starts without numpy.

The top of the tree: it may import anything in modelpack; only ``modelpack.__main__`` (and
the ``modelpack`` console script) import it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelpackError

__all__ = ["main"]

OK, PROBLEMS, USER_ERROR = 0, 1, 2
# The committed JSON Schema, found from this file so that it works from any folder.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "manifest.schema.json"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)  # bad arguments: argparse prints usage and exits 2
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        return command(args)
    except ModelpackError as exc:
        return _fail(str(exc))
    except OSError as exc:  # e.g. a file that vanished or cannot be read mid-way
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"modelpack: error: {message}", file=sys.stderr)
    return USER_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelpack",
        description="Save, inspect and check neural network archives (.mpk).",
        epilog="Exit status: 0 ok, 1 a check found problems, 2 a user error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="walk the file I/O chapter's flow and check each step")
    demo.add_argument("--workdir", help="keep the demo's files in this folder (default: a temporary one)")
    demo.set_defaults(run=_demo)

    show = commands.add_parser("inspect", help="show an archive's layers, sizes, metadata")
    show.add_argument("path")
    show.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    show.set_defaults(run=_inspect)

    check = commands.add_parser("verify", help="check every checksum and rule; exit 1 if damaged")
    check.add_argument("path")
    check.add_argument("--tensors", action="store_true", help="list each tensor's result")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=_verify)

    from . import convert, diff

    convert.add_parser(commands)
    diff.add_parser(commands)

    schema = commands.add_parser("schema", help="print, write or check the manifest's JSON Schema")
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_PATH}")
    mode.add_argument("--check", action="store_true", help=f"exit 1 unless {SCHEMA_PATH} is current")
    schema.set_defaults(run=_schema)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    run(args.workdir)
    return OK


def _inspect(args: argparse.Namespace) -> int:
    from ..api import inspect
    from . import mxnet_files

    kind = mxnet_files.mxnet_kind(args.path)
    if kind is not None:
        document = mxnet_files.inspect_document(args.path, kind)
        if args.json:
            print(json.dumps(document, indent=2))
        else:
            _print_rich(lambda plain: mxnet_files.render(document, plain=plain))
        return OK
    manifest = inspect(args.path)
    if args.json:
        print(json.dumps(manifest.model_dump(mode="json"), indent=2))
        return OK
    from .summary import render

    if manifest.shards is not None:  # a sharded index: show the tensors of all its shards
        manifest = manifest.model_copy(update={"weights": manifest.shard_tensors()})
    _print_rich(lambda plain: render(manifest, str(args.path), plain=plain))
    return OK


def _print_rich(renderable: Callable[[bool], object]) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped: plain, and wide enough that rows never wrap
        console = Console(width=160, no_color=True)
    console.print(renderable(not console.is_terminal))


def _verify(args: argparse.Namespace) -> int:
    from ..api import verify
    from . import mxnet_files
    from .progress import progress

    kind = mxnet_files.mxnet_kind(args.path)
    with progress(f"verifying {args.path}"):
        report = verify(args.path) if kind is None else mxnet_files.verify_report(args.path, kind)
    if args.json:
        document = {
            "path": report.path, "ok": report.ok, "format_version": report.format_version,
            "problems": report.problems, "notes": report.notes, "tensors": report.tensors,
        }
        print(json.dumps(document, indent=2))
    else:
        print(report)
        if args.tensors:
            for name, result in report.tensors.items():
                print(f"  {name}: {result}")
    return OK if report.ok else PROBLEMS


def _schema(args: argparse.Namespace) -> int:
    from ..format.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.check:
        if not SCHEMA_PATH.exists():
            print(f"{SCHEMA_PATH} is missing; run: python -m modelpack schema --write", file=sys.stderr)
            return PROBLEMS
        if SCHEMA_PATH.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA_PATH} is stale; run: python -m modelpack schema --write", file=sys.stderr)
            return PROBLEMS
        return OK
    if args.write:
        if not SCHEMA_PATH.parent.is_dir():
            return _fail(f"{SCHEMA_PATH.parent} does not exist: --write updates a source checkout's schema/")
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        return OK
    sys.stdout.write(text)
    return OK
