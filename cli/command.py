"""What every command module shares: the error a command fails with, and the subcommand set it registers into."""

from __future__ import annotations

import argparse

# The `driftloop` subcommands; each command module adds its own with ``add_commands(commands)``.
type Commands = argparse._SubParsersAction[argparse.ArgumentParser]


class CommandError(Exception):
    """A user-facing failure: printed without a traceback."""
