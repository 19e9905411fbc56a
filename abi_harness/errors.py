"""Errors the command line shows as one line (no traceback) with a non-zero exit."""


class UsageError(Exception):
    """A command that cannot run as asked; the message is shown as is."""
