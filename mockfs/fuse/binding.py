"""mfusepy's FUSE loop with the cost of each request cut where the binding allows.

ctypes runs every callback from a libfuse worker thread under
``PyGILState_Ensure``/``Release``: a thread Python does not know gets a new
thread state for each request, built and torn down again. :class:`Fuse` makes
each worker keep the first one it gets (one extra ``PyGILState_Ensure`` per
worker thread, never released: libfuse keeps its workers until unmount, and the
daemon exits with them).
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
