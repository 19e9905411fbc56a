"""vmcore-save: save a crash dump durably, then give its memory back.

    vmcore-save [--root DIR] [--quiet] OUTPUT_DIR

The userspace half of a pSeries phyp dump, also usable for fadump and kdump:

* the platform is told from the files present: ``/sys/kernel/release_region``
  (phyp), ``/sys/kernel/fadump/release_mem`` or the flat
  ``/sys/kernel/fadump_release_mem`` (fadump), otherwise kdump;
* /proc/vmcore is copied front to back to ``OUTPUT_DIR/vmcore`` (mode 0600),
  which is a valid ELF core because /proc/vmcore is one;
* every 64 MiB the copy is fsynced and ``OUTPUT_DIR/vmcore-save.state``
  records it; only then is memory given back: on phyp each release_region range
  in page-aligned pieces as soon as every byte it backs is saved, on fadump
  ``1`` to release_mem once everything is saved; kdump only saves;
* killed at any point, a rerun with the same OUTPUT_DIR carries on from the
  state file without reading memory it released, and releases the rest.

Exit status: 0 when the dump is saved (and released), 1 with one line on
stderr otherwise (no space, read errors, no dump, ...), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import NoReturn

from .abi_files import RELEASE_REGION, VMCORE, abi_path, detect_platform, no_dump_cause, phyp_ranges, write_attribute
from .coreinfo import CoreFormatError, CoreLayout, read_core_layout
from .errors import Failure
from .progress import Progress
from .reader import CHUNK, VmcoreReader
from .release_plan import ReleasePlan, source_spans
from .state import STATE_NAME, State, StateError

PROG = "vmcore-save"
CHECKPOINT = 64 << 20  # fsync and record progress (and release memory) this often

OUTPUT_NAME = "vmcore"


class Collector:
    """One run of vmcore-save."""

    def __init__(self, root: Path, out_dir: Path, quiet: bool) -> None:
        self.root = root
        self.out_dir = out_dir
        self.quiet = quiet
        self.out_path = out_dir / OUTPUT_NAME
        self.state_path = out_dir / STATE_NAME
        self.platform, self.release_path = detect_platform(root)
        self.state: State | None = None
        self.plan: ReleasePlan | None = None
        self.out_fd = -1
        self.dir_fd = -1
        self.progress: Progress | None = None

    # -- small helpers -------------------------------------------------------------------

    def abi(self, canonical: str) -> Path:
        return abi_path(self.root, canonical)

    def warn(self, text: str) -> None:
        if self.progress is not None and self.progress.shown:
            self.progress.note(f"{PROG}: warning: {text}")
        else:
            print(f"{PROG}: warning: {text}", file=sys.stderr)

    def save_state(self) -> None:
        assert self.state is not None
        self.state.save(self.state_path, self.dir_fd)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> int:
        vmcore = self.abi(VMCORE)
        if not self.out_dir.exists() and not vmcore.exists():
            # Nothing to save and nothing to finish: leave no empty directory behind.
            raise Failure(no_dump_cause(self.root))
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.dir_fd = os.open(self.out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise Failure(f"{self.out_dir}: cannot use as output directory: {exc.strerror}") from None
        try:
            self.state = State.load(self.state_path)
        except (StateError, OSError) as exc:
            raise Failure(str(exc)) from None
        try:
            return self._run()
        finally:
            if self.progress is not None:
                self.progress.close()
            for fd in (self.out_fd, self.dir_fd):
                if fd >= 0:
                    os.close(fd)

    def _run(self) -> int:
        state = self.state
        if state is not None and state.complete:
            self.done_message("already complete")
            return 0
        vmcore = self.abi(VMCORE)
        try:
            reader = VmcoreReader(vmcore)
        except FileNotFoundError:
            if state is not None and state.platform == "fadump" and state.saved == state.size:
                # Only release_mem removes /proc/vmcore: our last run's write went through.
                self.finish_fadump_release()
                self.done_message("already complete (release_mem had been written)")
                return 0
            raise Failure(no_dump_cause(self.root)) from None
        except OSError as exc:
            raise Failure(f"{vmcore}: cannot open: {exc.strerror}") from None
        try:
            self.collect(reader)
        finally:
            reader.close()
        if self.platform == "fadump":
            self.release_fadump()
        assert self.state is not None
        self.state.complete = True
        self.save_state()
        self.done_message("saved")
        return 0

    def collect(self, reader: VmcoreReader) -> None:
        try:
            core = read_core_layout(reader.pread, reader.size)
        except CoreFormatError as exc:
            raise Failure(f"{reader.path}: not an ELF core: {exc}") from None
        reader.page_size = core.page_size
        ranges, rmr = phyp_ranges(self.root) if self.platform == "phyp" else ([], None)
        self.adopt_state(reader.size, core, ranges)
        self.open_output(reader, core)
        state = self.state
        assert state is not None
        if self.platform == "phyp":
            self.plan = ReleasePlan(ranges, source_spans(core.loads, rmr), core.page_size)
            if state.pending is not None:
                start, length = state.pending
                # Unknowable whether the kernel saw it; writing it again could free pages
                # twice (and over-counts so the dump area is never registered again).
                self.warn(f"a release of {start:#x} {length:#x} was in flight when the last run stopped; "
                          "counting it as done")
                state.released.append([start, length])
                state.pending = None
                self.save_state()
            self.plan.restore(state.released)
            self.release_ready()
        self.progress = Progress(reader.size, state.saved, enabled=not self.quiet)
        self.copy(reader)
        if self.plan is not None:
            self.release_ready()
            if not self.plan.done:
                held = ", ".join(f"{s:#x} {n:#x}" for s, n in self.plan.held())
                raise Failure(f"saved everything but could not release {held}")

    def adopt_state(self, size: int, core: CoreLayout, ranges: list[tuple[int, int]]) -> None:
        """Start a new state, or check that the existing one is about this very dump."""
        state = self.state
        if state is None:
            if os.path.lexists(self.out_path):
                raise Failure(f"{self.out_path} exists but {self.state_path} does not: not overwriting a dump "
                              "this tool did not record; move it away or use another directory")
            self.state = State(self.platform, size, core.identity, core.page_size, ranges=[list(r) for r in ranges])
            self.save_state()
            return
        mine = (state.platform, state.size, state.identity, [tuple(r) for r in state.ranges])
        if mine != (self.platform, size, core.identity, ranges):
            raise Failure(f"{self.out_dir} holds another dump ({self.state_path} does not match {self.abi(VMCORE)}); "
                          "use an empty directory")

    def open_output(self, reader: VmcoreReader, core: CoreLayout) -> None:
        """Open the output at the durable prefix, dropping bytes written after it."""
        state = self.state
        assert state is not None
        # Read-write: the head already saved is compared with /proc/vmcore's below.
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if state.saved == 0 else 0)
        try:
            self.out_fd = os.open(self.out_path, flags, 0o600)
        except FileNotFoundError:
            raise Failure(f"{self.out_path} is gone but {self.state_path} records {state.saved} bytes saved: "
                          "they are lost; keep the state file and the output together") from None
        except OSError as exc:
            raise Failure(f"{self.out_path}: cannot open: {exc.strerror}") from None
        os.fchmod(self.out_fd, 0o600)  # whatever the umask or an earlier file said
        have = os.fstat(self.out_fd).st_size
        if have < state.saved:
            raise Failure(f"{self.out_path} holds {have} bytes but {state.saved} were recorded as saved")
        os.ftruncate(self.out_fd, state.saved)
        os.fsync(self.dir_fd)  # the new file's directory entry must survive too
        # The head is in the capture kernel's own memory, so it can be checked again.
        head = min(state.saved, core.head_end)
        if head and os.pread(self.out_fd, head, 0) != reader.pread(0, head):
            raise Failure(f"{self.out_path} does not start like {reader.path}: another dump? use an empty directory")
        os.lseek(self.out_fd, state.saved, os.SEEK_SET)

    def copy(self, reader: VmcoreReader) -> None:
        """Stream the rest of /proc/vmcore to the output, checkpointing as we go."""
        state = self.state
        assert state is not None and self.progress is not None
        pos, size, view = state.saved, reader.size, reader.view
        next_checkpoint = pos + CHECKPOINT
        try:
            while pos < size:
                want = min(CHUNK - pos % CHUNK, size - pos)
                got, failure = reader.fill(pos, want)
                pos += self.write_out(view, got, pos)
                self.progress.update(pos)
                if failure is not None:
                    self.checkpoint(pos)
                    raise Failure(f"{failure}; {state.saved} of {size} bytes saved to {self.out_path}, "
                                  "memory not saved is not released")
                if pos >= next_checkpoint:
                    self.checkpoint(pos)
                    next_checkpoint = pos + CHECKPOINT
        except KeyboardInterrupt:
            self.checkpoint(pos)
            raise
        self.checkpoint(pos)

    def write_out(self, view: memoryview, count: int, pos: int) -> int:
        """Write ``view[:count]`` at file offset *pos* (the current position)."""
        done = 0
        while done < count:
            try:
                done += os.write(self.out_fd, view[done:count])
            except OSError as exc:
                self.fail_output(exc, pos + done, "write")
        return done

    def make_durable(self, pos: int) -> None:
        """fsync the first *pos* bytes, then record them; OSError leaves the record as it was."""
        state = self.state
        assert state is not None
        os.fsync(self.out_fd)
        old, state.saved = state.saved, pos
        try:
            self.save_state()
        except OSError:
            state.saved = old
            raise

    def checkpoint(self, pos: int) -> None:
        """Make the first *pos* bytes durable, record it, and release what that allows."""
        assert self.state is not None
        if pos > self.state.saved:
            try:
                self.make_durable(pos)
            except OSError as exc:
                self.fail_output(exc, pos, "fsync or state update")
        if self.plan is not None:
            self.release_ready()

    def fail_output(self, exc: OSError, pos: int, what: str) -> NoReturn:
        """The output could not take more: keep what can be kept, then fail."""
        state = self.state
        assert state is not None
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # The state file needs a block or two of its own: give back the last
            # chunk so the record fits. Those bytes were never released, so a
            # rerun simply reads them again.
            keep = max(state.saved, pos - pos % CHUNK - CHUNK)
            with contextlib.suppress(OSError):
                os.ftruncate(self.out_fd, keep)
                self.make_durable(keep)
            if self.plan is not None:
                self.release_ready()
            raise Failure(f"no space left on device writing {self.out_path}: {state.saved} of {state.size} bytes "
                          "saved; free some space and run again to finish")
        raise Failure(f"{self.out_path}: {what} failed: {exc.strerror}; {state.saved} of {state.size} bytes saved "
                      "(earlier checkpoint)")

    # -- giving memory back --------------------------------------------------------------

    def release_ready(self) -> None:
        """phyp: release every piece whose bytes are all saved, one write per piece."""
        state, plan = self.state, self.plan
        assert state is not None and plan is not None
        for start, length in plan.releasable(state.saved):
            state.pending = [start, length]
            try:
                self.save_state()  # if we die in the write, the rerun must not repeat it
            except OSError as exc:
                state.pending = None
                raise Failure(f"{self.state_path}: cannot record a release: {exc.strerror}; nothing more released") from None
            try:
                write_attribute(self.abi(RELEASE_REGION), f"{start:#x} {length:#x}")
            except Failure:
                state.pending = None  # the kernel refused it: nothing was freed
                self.save_state()
                raise
            plan.mark_released(start, length)
            state.released.append([start, length])
            state.pending = None
            self.save_state()

    def release_fadump(self) -> None:
        state = self.state
        assert state is not None and self.release_path is not None
        if state.release_mem_done:
            return
        state.pending = [1]
        self.save_state()
        write_attribute(self.release_path, "1")
        self.finish_fadump_release()

    def finish_fadump_release(self) -> None:
        assert self.state is not None
        self.state.release_mem_done = True
        self.state.pending = None
        self.state.complete = True
        self.save_state()

    def done_message(self, what: str) -> None:
        if self.quiet or not sys.stderr.isatty():
            return
        state = self.state
        saved = state.saved if state else 0
        released = len(state.released) if state else 0
        extra = {"phyp": f", {released} release_region writes", "fadump": ", release_mem written"}.get(self.platform, "")
        print(f"{PROG}: {what}: {saved} bytes in {self.out_path}{extra}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="Save /proc/vmcore durably, then release the dump memory "
                                "(phyp release_region, fadump release_mem); resumable after a crash.")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", type=Path, help="where vmcore and vmcore-save.state go")
    p.add_argument("--root", type=Path, default=Path("/"), help="prefix of every ABI path (default: /)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return Collector(args.root, args.output_dir, args.quiet).run()
    except Failure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # anything not foreseen above still gets one line
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run again with the same OUTPUT_DIR to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
