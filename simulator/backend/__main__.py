"""`python -m simulator.backend`: the embedded backend in its own process (see simulator.generator.backend_process).

Same flags as `fleetsim backend`; one clear line on stderr and exit 2 on a start failure, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from simulator.backend import app as command
from simulator.errors import FleetsimError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.backend", description=command.HELP)
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except FleetsimError as exc:
        print(f"fleetsim backend: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
