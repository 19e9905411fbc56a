"""How one finished example is judged: the dump against the fixture, the mock's violations, the exit status.

Every problem is one line that says what is wrong with numbers that agree
with each other; the same violation seen many times is one line with a count.
Shared by ``conform``, its replays (``conform --replay``) and ``run --verify``.
"""

from __future__ import annotations

import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abi_specs.units import plural
from mockfs.dumps import DumpFormatError, VerifyReport, verify_dump
from mockfs.fuse.faults import FaultPlan

#: Faults that can make a complete save impossible: the collector must then fail honestly.
BLOCKING = ("eio", "enospc")


@dataclass
class SavedDump:
    """What the output directory holds: the best dump in it, and the files that are none."""

    path: Path | None
    report: VerifyReport | None
    unreadable: list[tuple[Path, str]]  # (file, why it is no dump)

    @property
    def complete(self) -> bool:
        return self.report is not None and self.report.ok(complete=True)

    def describe_incomplete(self) -> str:
        """Why the save is not complete, in words that agree with the counts."""
        if self.report is None:
            if self.unreadable:
                # A file of a dump format that is broken says more than a log beside it.
                broken = [u for u in self.unreadable if not u[1].startswith("not an ELF core")]
                path, why = (broken or self.unreadable)[0]
                return f"{path.name} is no readable dump: {why}"
            return "no dump in the output directory"
        r = self.report
        counted = [(n, what) for n, what in ((r.missing, "missing"), (r.different, "different"),
                                             (r.misplaced, "misplaced"), (r.extra, "extra")) if n]
        # "1 page missing, 3 different": the noun once, agreeing with the first count.
        parts = [f"{plural(n, 'page') if i == 0 else n} {what}" for i, (n, what) in enumerate(counted)]
        return f"{self.path.name if self.path else 'the dump'}: " + ", ".join(parts or ["incomplete"])


def find_dump(output: Path, image: Any) -> SavedDump:
    """The file in *output* holding the most of the fixture's memory, and the files that hold none."""
    best: tuple[Path | None, VerifyReport | None] = (None, None)
    unreadable = []
    if output.exists():
        for path in sorted(p for p in output.rglob("*") if p.is_file()):
            try:
                report = verify_dump(image, path)
            except (DumpFormatError, OSError, ValueError) as exc:
                unreadable.append((path, str(exc).removeprefix(f"{path}: ")))
                continue
            if best[1] is None or report.identical > best[1].identical:
                best = (path, report)
    return SavedDump(best[0], best[1], unreadable)


def violation_lines(violations: list[dict[str, Any]], skip: set[str] = frozenset(),  # type: ignore[assignment]
                    counts: dict[str, int] | None = None) -> list[str]:
    """One line per distinct violation, with how many times it was seen.

    The judge keeps the evidence of only the first few violations of a kind;
    *counts* (the report's ``violation_counts``) are the true totals, so the
    repeats it did not keep are counted too: added to the one message the kind
    had, or said apart when its messages differ.
    """
    kept = [(str(v["kind"]), str(v["message"])) for v in violations if v["kind"] not in skip]
    seen: Counter[tuple[str, str]] = Counter(kept)
    listed: Counter[str] = Counter(kind for kind, _ in kept)
    unlisted: dict[str, int] = {}
    for kind, total in (counts or {}).items():
        extra = int(total) - listed[kind]
        if kind in skip or extra <= 0:
            continue
        messages = [key for key in seen if key[0] == kind]
        if len(messages) == 1:
            seen[messages[0]] += extra
        else:
            unlisted[kind] = extra
    lines = [f"violation {kind}: {message}" + (f" ({n} times)" if n > 1 else "") for (kind, message), n in seen.items()]
    lines += [f"violation {kind}: {n} more not kept with evidence" for kind, n in unlisted.items()]
    return lines


def readable_by_others(output: Path) -> list[str]:
    """Saved files anyone may read: a dump holds secrets."""
    out = []
    for p in sorted(output.rglob("*")) if output.exists() else []:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if p.is_file() and mode & 0o077:
            out.append(f"{p.relative_to(output)} is readable by other users (mode {mode:04o})")
    return out


def judge_run(plan: FaultPlan, faults: tuple[str, ...], returncodes: list[int], violations: list[dict[str, Any]],
              output: Path, image: Any, counts: dict[str, int] | None = None) -> tuple[list[str], SavedDump]:
    """The problems of one finished run (empty when it conforms) and what it saved.

    *counts* are the true number of violations of each kind (*violations* holds the first few of each).
    """
    problems: list[str] = []
    saved = find_dump(output, image)
    returncode = returncodes[-1]
    if saved.report is not None and not saved.report.ok(complete=False):
        r = saved.report
        first = r.problems[0] if r.problems else None
        where = f" (first: {first.kind} page at {first.paddr:#x}{', ' + first.detail if first.detail else ''})" if first else ""
        problems.append(f"saved dump {saved.path.name if saved.path else ''} is not the fixture's memory: "
                        f"pages {r.different} different, {r.misplaced} misplaced, {r.extra} extra{where}")
    blocked = returncode != 0 and any(f.split(":")[0] in BLOCKING for f in faults)
    # An honest failure must keep unsaved memory reserved: memory-held is then right, not a violation.
    skip = {"memory-held"} if blocked and not saved.complete else set()
    problems += violation_lines(violations, skip, counts)
    problems += readable_by_others(output)
    # The runner reruns a command the kill-after fault killed: one status means the kill never came.
    killed = bool(plan.kill_after) and len(returncodes) > 1
    if returncode == 0 and not saved.complete:
        if killed:
            after = "after a kill, the rerun exited 0"
        elif plan.kill_after:
            after = f"exit status 0 before the kill-after fault ({plan.kill_after} bytes) ever fired"
        else:
            after = "exit status 0"
        problems.append(f"{after} although the save is incomplete ({saved.describe_incomplete()})")
    if returncode != 0 and saved.complete and not violations and not plan.kill_after:
        problems.append(f"exit status {returncode} although the dump is complete")
    return problems, saved


def judge_failed_dump(returncode: int, violations: list[dict[str, Any]], output: Path,
                      counts: dict[str, int] | None = None) -> list[str]:
    """A dump firmware flagged as failed: there is nothing to save, and nothing to give back.

    The collector must not claim a dump (no file in *output* may pass for
    one), must break no rule, and must end by itself rather than by a signal;
    its exit status is its own choice.
    """
    problems = violation_lines(violations, counts=counts)
    for path in sorted(p for p in output.rglob("*") if p.is_file()) if output.exists() else []:
        problems.append(f"{path.relative_to(output)} saved although the firmware flagged the dump as failed")
    if returncode >= 128:
        problems.append(f"the collector died of signal {returncode - 128} on a machine with a failed dump")
    return problems
