"""Examples side by side: at most *jobs* at once, each in a thread of its own, results in campaign order.

An example spends its time in other processes (the forked run supervisor, the
mock daemon, the sandboxed collector), so threads are enough: this process
mostly waits for them. Whatever order the examples finish in, results are
handed on in the campaign's order, so the console and the JUnit file read the
same for any number of jobs. Scratch space is bounded as well: every example
writes a whole dump, so an example starts only while the space the running
ones may fill stays within a budget (one example always runs).

On a stop (Ctrl-C, SIGTERM), the examples under way end as a run ends on
Ctrl-C: each one's supervisor gets SIGTERM and cleans up (unmount, reap the
sandbox), and one that does not end in time is killed. The examples finished
by then are kept.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from mockfs.sandbox.processes import kill_and_wait

T = TypeVar("T")
R = TypeVar("R")

#: How often the waiting main thread wakes: a signal taken by another thread cannot wake it, so it looks.
POLL = 0.2
#: How long stopped examples get to clean up before they are killed.
GRACE = 30.0


@dataclass(frozen=True)
class Job(Generic[T]):
    """One piece of work: its number in the campaign, the item, the scratch bytes it may fill."""

    number: int
    item: T
    cost: int = 0


class _Worker(threading.Thread):
    """Runs one job; its result (or exception) goes to the shared queue."""

    def __init__(self, job: Job[T], run: Callable[[Job[T]], R], done: queue.SimpleQueue[tuple[_Worker, object]]) -> None:
        super().__init__(name=f"conform-example-{job.number}", daemon=True)
        self.job, self._run, self._done = job, run, done

    def run(self) -> None:
        try:
            result: object = self._run(self.job)
        except BaseException as exc:  # handed to the main thread, which decides
            result = exc
        self._done.put((self, result))

    def children(self) -> list[int]:
        """The processes this thread forked that are still there (the run supervisor)."""
        try:
            with open(f"/proc/{os.getpid()}/task/{self.native_id}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:  # the thread is gone, or a kernel without CONFIG_PROC_CHILDREN
            return []

    def signal_children(self, sig: int, skip: set[int]) -> None:
        """Send *sig* to this thread's children not in *skip*, and add them to it."""
        for pid in self.children():
            if pid in skip:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if pid in self.children():  # still ours (not reaped and reused between the two looks)
                    signal.pidfd_send_signal(fd, sig)
                    skip.add(pid)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)


def _stop(workers: Sequence[_Worker]) -> None:
    """End the jobs under way: SIGTERM to their supervisors, then SIGKILL to those still there after GRACE.

    Each supervisor is signalled once (a second signal would cut its clean-up
    short), including one a job starts after the stop (a run after a run).
    """
    signalled: set[int] = set()
    end = time.monotonic() + GRACE
    try:
        while (alive := [w for w in workers if w.is_alive()]) and time.monotonic() < end:
            for w in alive:
                w.signal_children(signal.SIGTERM, signalled)
            alive[0].join(POLL)
    except KeyboardInterrupt:  # asked twice: no more waiting
        pass
    left = [w for w in workers if w.is_alive()]
    kill_and_wait([pid for w in left for pid in w.children()])
    for w in left:
        w.join(GRACE)


def run_ordered(jobs: Sequence[Job[T]], run: Callable[[Job[T]], R], *, workers: int, space: int,
                on_result: Callable[[R], None] = lambda _r: None,
                should_stop: Callable[[], bool] = lambda: False) -> tuple[list[R], bool]:
    """Run *jobs* with at most *workers* at once and their costs within *space*; (results, interrupted).

    Results come in the order of *jobs*; *on_result* sees each as soon as all
    before it are done. When stopped (KeyboardInterrupt or *should_stop*), the
    jobs under way are ended (see the module docstring) and the results are
    those finished, still in order. An exception from a job ends the others
    and is raised.

    The first job runs alone. Jobs fork (the run supervisor) while other
    threads work, and a forked child inherits a module that another thread was
    importing half-imported, with its import lock held for ever; after one
    whole job this process has imported what a job needs.
    """
    if workers < 1:
        raise ValueError(f"at least one worker is needed, not {workers}")
    pending = deque(jobs)
    order = [j.number for j in jobs]
    finished: dict[int, R] = {}
    results: list[R] = []
    running: dict[int, _Worker] = {}
    done: queue.SimpleQueue[tuple[_Worker, object]] = queue.SimpleQueue()
    used = 0

    def hand_on(stopped: bool = False) -> None:
        """Pass on the finished results in order: up to the first unfinished one (every one, once stopped)."""
        while order and (order[0] in finished or stopped):
            number = order.pop(0)
            if number in finished:
                results.append(finished[number])
                on_result(finished[number])

    try:
        while pending or running:
            while pending and len(running) < workers and not should_stop():
                if running and (not finished or used + pending[0].cost > space):
                    break  # the first job warms up alone, or the next dump may not fit: wait for one to end
                job = pending.popleft()
                used += job.cost
                running[job.number] = worker = _Worker(job, run, done)
                worker.start()
            if should_stop():
                raise KeyboardInterrupt
            try:
                worker, result = done.get(timeout=POLL)
            except queue.Empty:
                continue
            worker.join()
            del running[worker.job.number]
            used -= worker.job.cost
            if isinstance(result, BaseException):
                raise result
            finished[worker.job.number] = result  # type: ignore[assignment]
            hand_on()
    except KeyboardInterrupt:
        _stop(list(running.values()))
        _collect(done, finished)
        hand_on(stopped=True)
        return results, True
    except BaseException:
        _stop(list(running.values()))
        raise
    return results, False


def _collect(done: queue.SimpleQueue[tuple[_Worker, object]], finished: dict[int, R]) -> None:
    """The results that arrived while stopping: those that finished are kept (the ended ones failed to)."""
    while True:
        try:
            worker, result = done.get_nowait()
        except queue.Empty:
            return
        if not isinstance(result, BaseException) and worker.job.number not in finished:
            finished[worker.job.number] = result  # type: ignore[assignment]
