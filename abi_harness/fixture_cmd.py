"""`abi-harness fixture ...`: list, create, show, export, import and verify fixtures."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fixture`` subcommand to the top-level parser."""
