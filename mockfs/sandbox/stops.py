"""The signals that stop a command as Ctrl-C does, and a way to hold them while something is handed over.

One list for the command line (which turns each into KeyboardInterrupt), the
mock's daemon (which lets libfuse's loop take them) and the owners of scratch
directories (which hold them while one is made).
"""

from __future__ import annotations

import signal

#: SIGINT, SIGTERM and SIGHUP: each ends a command as Ctrl-C does, its clean-up run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class stop_signals_held:
    """Hold the stop signals in this thread for the block: one that lands then is taken at its end.

    Made and handed to its owner inside the block (``tmp = Scratch(...)`` within
    the owner's ``try``), a scratch directory is always the owner's to remove:
    a stop in between would otherwise leave it behind, owned by nobody.
    """

    def __enter__(self) -> None:
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def __exit__(self, *exc: object) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
