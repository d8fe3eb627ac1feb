"""``driftloop demo`` (``make demo``): the closed loop on its own local AWS, narrated (``cli/closed_loop.py``)."""

from __future__ import annotations

import argparse

from cli.command import Commands


def add_commands(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="the closed loop on a local AWS: deploy, train, serve, drift, alarm, retrain, promote (narrated)",
    )
    demo.add_argument("--keep", action="store_true", help="leave the local AWS running afterwards")
    demo.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the demo needs pandas and the local cloud, which no other command may pay for or require.
    from cli import closed_loop

    return closed_loop.run(keep=args.keep)
