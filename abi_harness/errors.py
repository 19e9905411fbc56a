"""Errors the command line shows as one line (no traceback) with a non-zero exit."""

from __future__ import annotations

import argparse

from abi_specs.errors import AbiError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a quick command 3 ms; annotations alone use it
    from typing import NoReturn


class UsageError(AbiError):
    """A command that cannot run as asked; the message is shown as is."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


#: The signal that asked the running command to stop (SIGINT, SIGTERM, SIGHUP), once one did.
STOPPED_BY: list[int] = []
