"""`fleetsim` command line: parsing and dispatch only (the logic lives in simulator/commands/<name>.py).

Each command module exposes `HELP: str`, `add_arguments(parser) -> None` and `run(args) -> int`.
A FleetsimError becomes one line on stderr and its exit code (2 for bad input); never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from simulator import __version__
from simulator.errors import ConfigErrors, FleetsimError

__all__ = ["main"]

# Subcommand -> module under simulator.commands. Order is the order of `fleetsim --help`.
COMMANDS = (
    "run", "worker", "plan", "validate", "backend", "devices", "replay", "report", "baseline", "compare",
    "triggers", "otarequest",
)


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"simulator.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"simulator.commands.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetsim", description="Edgehog OTA device-fleet load tester.")
    parser.add_argument("--version", action="version", version=f"fleetsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


# Commands that run Locust: gevent must patch the standard library before ssl, socket or requests are imported
# (Locust's own import does it too, but by then other modules may hold unpatched references).
GEVENT_COMMANDS = frozenset({"run", "replay", "worker"})


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in GEVENT_COMMANDS:
        from gevent import monkey

        monkey.patch_all()
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    try:
        code: int = module.run(args)
        return code
    except ConfigErrors as exc:
        for err in exc.errors:
            print(str(err), file=sys.stderr)
        return exc.exit_code
    except FleetsimError as exc:
        print(f"fleetsim {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"fleetsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `fleetsim plan ... | head`: the reader left; exit quietly as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 0
    except Exception as exc:
        if os.environ.get("FLEETSIM_DEBUG"):
            raise
        print(f"fleetsim {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(a bug: please report it; FLEETSIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
