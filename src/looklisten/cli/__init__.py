"""The ``looklisten`` command line: argparse, printing and exit codes live here only."""

from looklisten.cli.main import main

__all__ = ["main"]
