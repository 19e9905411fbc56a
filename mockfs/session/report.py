"""A run's report for people: what was read, what was released, what went wrong."""

from __future__ import annotations

from typing import Any

from abi_specs.units import format_size, plural

from .runner import EXIT_VIOLATIONS, RunResult


def _evidence(ev: dict[str, object]) -> str:
    return ", ".join(f"{k} {v:#x}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v!r}"
                     for k, v in ev.items())


def _event_text(event: dict[str, Any]) -> str:
    """One event of the machine's life, in words."""
    kind = str(event.get("event"))
    detail = {k: v for k, v in event.items() if k not in ("event", "time", "kernel")}
    if kind == "sysctl":
        return f"sysctl {detail.get('key')} = {detail.get('value')}"
    by = f" by {detail.pop('comm')}" if detail.get("comm") else ""
    via = f" ({detail.pop('syscall')})" if detail.get("syscall") else ""
    rest = ", ".join(f"{k} {v}" for k, v in detail.items() if not isinstance(v, (dict, list)))
    return f"{kind}{by}{via}" + (f": {rest}" if rest else "")


def _machine_lines(result: RunResult) -> list[str]:
    """The machine's side of the run: its kernel, what it went through, the sysctls it keeps."""
    r, m = result.report, result.machine
    lines = []
    if m:
        held = [k for k, v in m.get("variables", {}).items() if v]
        armed = ", armed for the next crash" if m.get("armed") else ""
        lines.append(f"  machine: {m.get('kernel')} kernel{armed}; holds {', '.join(held) or 'nothing'}")
    events = [e for e in r.get("events", []) if e.get("event") != "created"]  # type: ignore[union-attr]
    for event in events[:20]:
        lines.append(f"    {_event_text(event)}")
    if len(events) > 20:
        lines.append(f"    ... {len(events) - 20} more events")
    if result.crashed:
        lines.append("  the machine crashed during the run: every process of the run was killed")
    elif result.rebooted:
        lines.append("  the machine rebooted during the run: every process of the run was killed")
    if result.seal:
        lines.append(f"  sealed calls answered by the machine: {len(result.seal)}")
        lines += [f"    {call}" for call in result.seal[:10]]
    return lines


def render_report(result: RunResult) -> str:
    """The report ``abi-harness run`` prints after the program ended."""
    r = result.report
    lines = [f"abi-harness: {r.get('fixture')} ({r.get('platform')}); the program exited with {result.returncode}"]
    if result.faults:
        lines.append(f"  faults: {', '.join(result.faults)}")
    lines += _machine_lines(result)
    ranges = r.get("read_ranges", [])
    if r.get("kernel") == "armed" and not ranges and not r.get("releases") and not r.get("violations"):
        return "\n".join([*lines, f"  exit status: {result.exit_status}"])  # no dump was there to read
    lines.append(f"  read: {format_size(int(r.get('bytes_read', 0)))} of crashed memory in {plural(len(ranges), 'range')}")
    releases = r.get("releases", [])
    if releases:
        count = int(r.get("release_count", len(releases)))  # beyond the kept details, only counted
        lines.append(f"  released: {plural(count, 'write')}")
        shown = releases if count <= 12 else [*releases[:6], None, *releases[-6:]]
        for rel in shown:
            if rel is None:
                lines.append(f"    ... {count - 12} more")
            elif "release_mem" in rel:
                lines.append("    release_mem: all reserved memory, /proc/vmcore removed")
            else:
                lines.append(f"    {rel['start']:#x} +{rel['length']:#x}: kernel freed {plural(int(rel['pages']), 'page')}"
                             + (" and re-registered the dump area" if rel.get("reregistered") else ""))
    else:
        lines.append("  released: nothing")
    violations = result.violations
    counts = r.get("violation_counts", {})
    if violations:
        lines.append(f"  violations: {sum(counts.values()) if counts else len(violations)}")
        for v in violations[:20]:
            lines.append(f"    {v['kind']}: {v['message']}" + (f" ({_evidence(v['evidence'])})" if v.get("evidence") else ""))
    else:
        lines.append("  violations: none")
    status = result.exit_status
    why = " (the program succeeded, but violations were recorded)" if status == EXIT_VIOLATIONS and result.returncode == 0 else ""
    lines.append(f"  exit status: {status}{why}")
    return "\n".join(lines)
