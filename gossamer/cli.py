"""The ``gossamer`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gossamer import __version__


def _demo(args: argparse.Namespace) -> int:
    from gossamer.sim.demo import run_demo

    run_demo(print, seed=args.seed, nodes=args.nodes, loss=args.loss)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gossamer",
        description="Masterless clusters for Python: membership, failure detection, soft state.",
    )
    parser.add_argument("--version", action="version", version=f"gossamer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run a small simulated cluster and narrate what happens in it"
    )
    demo.add_argument("--seed", type=int, default=7, help="the simulation seed (default 7)")
    demo.add_argument("--nodes", type=_at_least(3), default=5, help="cluster size (default 5)")
    demo.add_argument(
        "--loss", type=_fraction, default=0.01, help="datagram loss probability (default 0.01)"
    )
    demo.set_defaults(run=_demo)
    return parser


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be in [0, 1)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
