"""A run's report for people: what was read, what was released, what went wrong."""

from __future__ import annotations

from abi_specs.units import format_size, plural

from .runner import EXIT_VIOLATIONS, RunResult


def _evidence(ev: dict[str, object]) -> str:
    return ", ".join(f"{k} {v:#x}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v!r}"
                     for k, v in ev.items())


def render_report(result: RunResult) -> str:
    """The report ``abi-harness run`` prints after the program ended."""
    r = result.report
    lines = [f"abi-harness: {r.get('fixture')} ({r.get('platform')}); the program exited with {result.returncode}"]
    if result.faults:
        lines.append(f"  faults: {', '.join(result.faults)}")
    ranges = r.get("read_ranges", [])
    lines.append(f"  read: {format_size(int(r.get('bytes_read', 0)))} of crashed memory in {plural(len(ranges), 'range')}")
    releases = r.get("releases", [])
    if releases:
        lines.append(f"  released: {plural(len(releases), 'write')}")
        shown = releases if len(releases) <= 12 else [*releases[:6], None, *releases[-6:]]
        for rel in shown:
            if rel is None:
                lines.append(f"    ... {len(releases) - 12} more")
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
