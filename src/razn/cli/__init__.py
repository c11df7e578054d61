"""The `razn` command line: one sub-command per module in this package.

Each command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`, and imports its heavy dependencies inside `run`, so
`razn --help` stays instant. Errors caused by the user's input
(`razn.errors.RaznError`) are printed as one line naming the file and the
problem, with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from razn._version import __version__
from razn.errors import RaznError

# name -> module under razn.cli; add a command by adding its module here.
COMMANDS = {
    "synth": "razn.cli.synth",
    "info": "razn.cli.info",
    "segment": "razn.cli.segment",
    "export": "razn.cli.export",
    "convert": "razn.cli.convert",
    "train": "razn.cli.train",
    "evaluate": "razn.cli.evaluate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="razn",
        description="Reinforced Auto-Zoom Net for whole-slide breast histology.",
    )
    parser.add_argument("--version", action="version", version=f"razn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except RaznError as error:
        print(f"razn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"razn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
