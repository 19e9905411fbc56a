"""mfusepy's FUSE loop with the cost of each request cut where the binding allows.

ctypes runs every callback under ``PyGILState_Ensure``/``Release``: in a
worker thread of libfuse's multi-threaded loop, a thread Python does not know,
that builds a new thread state for each request and tears it down again.
:class:`Fuse` makes each worker keep the first one it gets (one extra
``PyGILState_Ensure`` per thread, never released: libfuse keeps its workers
until unmount, and the daemon exits with them). The mock's single-threaded loop
runs callbacks in the thread that mounted, whose state Python keeps anyway.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from .lib import load_mfusepy

mfusepy = load_mfusepy()

_kept = threading.local()  # per thread state: set once the worker's state is kept
_ensure = ctypes.pythonapi.PyGILState_Ensure


class Fuse(mfusepy.FUSE):
    """``mfusepy.FUSE`` whose worker threads keep their Python thread state."""

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(_kept, "yes", False):
            _ensure()  # one more reference: ctypes' Release no longer destroys this state
            _kept.yes = True
        return super()._wrapper(func, *args, **kwargs)
