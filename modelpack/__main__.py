"""Command line: ``python -m modelpack demo | inspect PATH | verify PATH | schema [--check]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ModelpackError

SCHEMA_PATH = Path("schema") / "manifest.schema.json"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for a modelpack error)."""
    parser = argparse.ArgumentParser(prog="modelpack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="walk the file I/O chapter's flow and check it")
    demo.add_argument("--workdir", help="folder for the demo's files (default: a new temp folder)")
    show = commands.add_parser("inspect", help="print an archive's manifest without loading weights")
    show.add_argument("path")
    check = commands.add_parser(
        "verify", help="check every checksum and structure of an archive; exit 1 if damaged"
    )
    check.add_argument("path")
    check.add_argument("--tensors", action="store_true", help="list each tensor's result")
    schema = commands.add_parser("schema", help="print or check the manifest's JSON Schema")
    schema.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_PATH}")
    schema.add_argument("--check", action="store_true", help=f"fail if {SCHEMA_PATH} is stale")
    args = parser.parse_args(argv)

    try:
        if args.command == "demo":
            from .demo import run

            run(args.workdir)
        elif args.command == "inspect":
            from .api import inspect
            from .format.schema import manifest_to_yaml

            sys.stdout.write(manifest_to_yaml(inspect(args.path)))
        elif args.command == "schema":
            return _schema(write=args.write, check=args.check)
        elif args.command == "verify":
            return _verify(args.path, tensors=args.tensors)
    except ModelpackError as exc:
        print(f"modelpack: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _verify(path: str, *, tensors: bool) -> int:
    from .format.verify import verify

    try:
        report = verify(path)
    except OSError as exc:
        print(f"modelpack: error: cannot open {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(report)
    if tensors:
        for name, result in report.tensors.items():
            print(f"  {name}: {result}")
    return 0 if report.ok else 1


def _schema(*, write: bool, check: bool) -> int:
    from .format.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if check:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is stale; run: python -m modelpack schema --write", file=sys.stderr)
            return 1
        return 0
    if write:
        SCHEMA_PATH.parent.mkdir(exist_ok=True)
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
