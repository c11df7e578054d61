"""The `razn` command line: one sub-command per module in this package.

Each command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`, and imports its heavy dependencies inside `run`, so
`razn --help` stays instant.

Exit codes, the same for every command (and shown by `razn --help`):

- 0: done;
- 1: a slide could not be read or segmented (with several slides, the
  others were still done);
- 2: bad input or environment: arguments, annotation files, checkpoints,
  an output folder that is missing or read-only, a full disk;
- 130: interrupted (Ctrl-C); what was finished is kept, `segment` resumes.

Errors caused by the user's input or machine (`razn.errors.RaznError`, and
the OS's errors while writing) are printed as one line naming the file and
the problem, never a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from razn._version import __version__
from razn.errors import RaznError, SlideError

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

#: The exit-code convention (see the module docstring).
EXIT_OK, EXIT_SLIDE_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    a slide could not be read or segmented (the other slides were still done)
  2    bad input or environment: arguments, annotation or checkpoint files,
       an output folder that is missing or read-only, a full disk
  130  interrupted; finished outputs are kept and `razn segment` resumes
"""


def build_parser() -> argparse.ArgumentParser:
    from razn.cli._arguments import OneLineParser

    parser = OneLineParser(
        prog="razn",
        description="Reinforced Auto-Zoom Net for whole-slide breast histology.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"razn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_library_warnings()
    try:
        return int(args._run(args) or 0)
    except SlideError as error:
        print(f"razn {args.command}: error: {error}", file=sys.stderr)
        return EXIT_SLIDE_FAILED
    except RaznError as error:
        print(f"razn {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        # The machine, not a bug: a full disk or a read-only folder met
        # somewhere no atomic writer turned it into an OutputError.
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or str(error)
        print(f"razn {args.command}: error: {where}{reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"razn {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _quiet_library_warnings() -> None:
    """tifffile logs (at error level) what it works around in a damaged file
    to stderr; the CLI says what matters in its own one-line error instead."""
    import logging

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
