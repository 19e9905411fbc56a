"""Hypothesis strategies for every format the spec knows.

For tool authors' own tests as much as for ours. Everything is derived from
a spec entry, so a new attribute in a spec file gets strategies for free:

* :func:`values` / :func:`texts`: valid field values and the text the kernel
  prints for them;
* :func:`near_misses`: ``(text, how)`` pairs, each one small edit away from a
  valid text and always invalid (upper-case hex, a leading zero, a missing or
  extra character, the ``/`` continuation of the 2007 document...);
* :func:`sscanf_writes`: writes built from parts, each with the values the
  kernel's ``sscanf`` scans from it (or ``None`` when it scans too few);
* :func:`property_records`: records of a binary device-tree property;
* :func:`phyp_layouts` / :func:`release_region_texts`: phyp dump layouts by
  the kernel's own sizing, and what a real capture kernel's release_region
  prints for them (offsets, zero lengths, then the reserved remainder);
* :func:`walks`: lives of a machine, sequences of transitions that apply
  one after the other from a state, with the state each one leads to.

>>> from abi_specs import builtin_spec
>>> from abi_specs import strategies
>>> strategy = strategies.texts(builtin_spec().get("release_region"))
"""

from __future__ import annotations

from hypothesis import strategies as st

from .kformat import Field
from .kscan import parse_scanf_format
from .lifecycle import KernelState, Lifecycle, TransitionRefused
from .model import AbiFile
from .phyp import PhypLayout, phyp_layout, shown_pairs
from .versions import KernelVersion

# Text a %s field may hold: anything printable but NUL (the kernel's strings end there).
_TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=255, blacklist_categories=("Cs",)), max_size=40)


def field_values(f: Field) -> st.SearchStrategy[int | str]:
    """Values that fit one printf field, biased towards the edges of its range."""
    if f.kind == "s":
        return _TEXT
    edges = st.sampled_from(sorted({f.minimum, 0, 1, f.maximum, max(f.minimum, -1)}))
    return st.one_of(edges, st.integers(f.minimum, f.maximum))


def values(entry: AbiFile) -> st.SearchStrategy[dict[str, int | str]]:
    """Field values for *entry*'s read format."""
    if entry.read is None:
        raise ValueError(f"{entry.name} has no read format")
    return st.fixed_dictionaries({f.name: field_values(f) for f in entry.read.printf.fields})


def texts(entry: AbiFile) -> st.SearchStrategy[str]:
    """Texts the kernel could print for *entry*."""
    assert entry.read is not None
    return values(entry).map(entry.read.format)


def _mutations(entry: AbiFile, vals: dict[str, int | str]) -> list[tuple[str, str]]:
    """Every always-invalid one-edit mutation of the text for *vals*."""
    assert entry.read is not None
    tokens = entry.read.printf.tokens
    pieces = [t if isinstance(t, str) else t.render(vals[t.name]) for t in tokens]
    # A %s field swallows text up to the literal after it, so edits of that
    # literal (or an extra newline at the end) can still be valid: skip them.
    loose = {k + d for k, t in enumerate(tokens) if isinstance(t, Field) and t.kind == "s" for d in (-1, 1)}
    out: list[tuple[str, str]] = []

    def rebuild(k: int, piece: str) -> str:
        return "".join([*pieces[:k], piece, *pieces[k + 1:]])

    for k, token in enumerate(tokens):
        piece = pieces[k]
        if isinstance(token, str):
            if k in loose:
                continue
            for i, ch in enumerate(token):
                out.append((rebuild(k, token[:i] + token[i + 1:]), f"literal {ch!r} deleted"))
            swapped = token.upper() if token != token.upper() else token.lower()
            if swapped != token:
                out.append((rebuild(k, swapped), "literal text in the wrong case"))
            continue
        if token.kind == "s":
            continue
        if token.kind in ("x", "pa") and any(c in "abcdef" for c in piece[2 if token.kind == "pa" else 0:]):
            out.append((rebuild(k, piece.upper() if token.kind == "x" else "0x" + piece[2:].upper()),
                        f"upper-case hex in {token.name}"))
        if token.kind == "pa":
            out.append((rebuild(k, "0x0" + piece[2:]), f"17 hex digits in {token.name}"))
            out.append((rebuild(k, piece[2:]), f"{token.name} without 0x"))
        else:
            out.append((rebuild(k, ("-0" + piece[1:]) if piece.startswith("-") else "0" + piece),
                        f"leading zero in {token.name}"))
            too_big = token.maximum + 1
            out.append((rebuild(k, format(too_big, "x") if token.kind == "x" else str(too_big)),
                        f"{token.name} does not fit {token.bits} bits"))
            if token.kind != "d":
                out.append((rebuild(k, "-" + piece), f"sign on unsigned {token.name}"))
            out.append((rebuild(k, ""), f"{token.name} missing"))
            out.append((rebuild(k, "+" + piece), f"plus sign on {token.name}"))
    text = "".join(pieces)
    out.append((text + " ", "trailing space"))
    if not loose:
        out.append((text + "\n", "extra newline"))
    if "HPTE:" in text:
        out.append((text.replace(" DUMP:", " / DUMP:"), "the 2007 document's '/' continuation"))
    return out


def near_misses(entry: AbiFile) -> st.SearchStrategy[tuple[str, str]]:
    """``(text, how it was broken)``: texts one edit away from valid, all invalid."""
    return values(entry).flatmap(lambda v: st.sampled_from(_mutations(entry, v)))


_SPACE = st.text(st.sampled_from(" \t\n\v\f\r"), max_size=3)


def _hex_number(value: int) -> st.SearchStrategy[str]:
    """Ways to write *value* that ``%x`` reads back as *value*."""
    digits = format(value, "x")
    return st.tuples(
        st.sampled_from(["", "0x", "0X"]),
        st.text(st.just("0"), max_size=3),
        st.booleans(),
    ).map(lambda t: t[0] + t[1] + (digits.upper() if t[2] else digits))


def sscanf_writes(entry: AbiFile) -> st.SearchStrategy[tuple[bytes, dict[str, int] | None]]:
    """Writes for an ``sscanf`` store method, with the values it must scan.

    Well-formed writes (white space before and between the numbers, ``0x``
    prefixes, leading zeros, mixed case, any junk after the last number) come
    with their values; writes missing a number, using a separator other than
    white space, or a sign, come with ``None``: fewer numbers than needed.
    """
    w = entry.write
    if w is None or w.parser != "sscanf":
        raise ValueError(f"{entry.name} has no sscanf write format")
    convs = [c for c in parse_scanf_format(w.format, w.fields) if not isinstance(c, str)]
    if any(c.base != 16 or c.bits != 64 for c in convs):
        raise ValueError(f"{entry.name}: only %lx conversions are supported here")
    names = [c.field for c in convs]

    @st.composite
    def good(draw: st.DrawFn) -> tuple[bytes, dict[str, int] | None]:
        vals = [draw(st.integers(0, (1 << 64) - 1)) for _ in names]
        text = draw(_SPACE)
        for i, v in enumerate(vals):
            text += draw(_hex_number(v))
            text += draw(_SPACE.filter(bool)) if i + 1 < len(vals) else ""
        text += draw(st.one_of(st.just(""), st.just("\n"), st.text(st.sampled_from(" \nzq,;:-+/"), max_size=5)))
        return text.encode(), dict(zip(names, vals))

    @st.composite
    def bad(draw: st.DrawFn) -> tuple[bytes, dict[str, int] | None]:
        vals = [draw(st.integers(0, (1 << 64) - 1)) for _ in names]
        cut = draw(st.integers(0, len(vals) - 1))
        text = draw(_SPACE)
        for v in vals[:cut]:
            text += draw(_hex_number(v)) + draw(_SPACE.filter(bool))
        kind = draw(st.sampled_from(["end", "separator", "sign", "nul", "junk"]))
        if kind == "separator" and cut:
            text = text.rstrip(" \t\n\v\f\r") + draw(st.sampled_from([",", ";", ":", "/"])) + format(vals[cut], "x")
        elif kind == "sign":
            text += draw(st.sampled_from(["-", "+"])) + format(vals[cut], "x")
        elif kind == "nul":
            text += "\0" + format(vals[cut], "x")
        elif kind == "junk":
            text += draw(st.sampled_from(["g", "z", "x", "#", "_"])) + format(vals[cut], "x")
        return text.encode(), None

    return st.one_of(good(), bad())


def property_records(entry: AbiFile) -> st.SearchStrategy[tuple[dict[str, int], list[dict[str, int]]]]:
    """``(head, records)`` for a binary device-tree property."""
    cells = entry.cells
    if cells is None:
        raise ValueError(f"{entry.name} is not a binary property")
    bits = {"u8": 8, "u16": 16, "u32": 32, "u64": 64}

    def record(fields: tuple[tuple[str, str], ...]) -> st.SearchStrategy[dict[str, int]]:
        return st.fixed_dictionaries({n: st.integers(0, (1 << bits[k]) - 1) for k, n in fields})

    count = st.integers(1, 6) if cells.repeat else st.just(1)
    return st.tuples(record(cells.head), count.flatmap(lambda n: st.lists(record(cells.fields), min_size=n, max_size=n)))


_MiB = 1 << 20


def _valid_layout(lay: PhypLayout) -> bool:
    # The firmware's areas lie inside what the capture kernel reserves, with room left above them.
    return lay.scratch_start >= lay.reserve_start and lay.second_len > 0


def phyp_layouts() -> st.SearchStrategy[PhypLayout]:
    """phyp dump layouts as the kernel sizes them: RAM from 640 MiB to 1 TiB, the firmware's
    CPU state and HPTE sizes (ibm,configure-kernel-dump-sizes), and now and then the
    ``phyp_dump_reserve_size=`` boot option."""
    ram = st.integers(10, 16384).map(lambda n: n * 64 * _MiB)
    cpu = st.one_of(st.just(0x10000), st.integers(1, 256).map(lambda n: n * 0x1000))
    hpte = st.one_of(st.sampled_from([0x1000, 0x1000000]), st.integers(1, 1 << 14).map(lambda n: n * 0x1000))
    option = st.one_of(st.just(0), st.integers(1, 16).map(lambda n: n * 256 * _MiB))
    return st.builds(phyp_layout, ram, cpu, hpte, option).filter(_valid_layout)


def release_region_texts(entry: AbiFile, rebased: bool | None = None) -> st.SearchStrategy[tuple[str, PhypLayout]]:
    """``(text, layout)``: what a real capture kernel's release_region prints for a drawn layout.

    Not arbitrary values (that is :func:`texts`): the kernel prints its own
    dump header, the three destinations as offsets (CPU 0, HPTE after the CPU
    state, DUMP after both; the scratch address added once it registered
    again, *rebased*, drawn when None) with zero lengths, then the one pair
    that means anything: the reserved start and the reserved size less the
    scratch size. *entry* is the spec's release_region.
    """
    assert entry.read is not None
    fields = [f.name for f in entry.read.printf.fields]
    again = st.booleans() if rebased is None else st.just(rebased)

    def render(lay: PhypLayout, after: bool) -> tuple[str, PhypLayout]:
        assert entry.read is not None
        return entry.read.format(dict(zip(fields, shown_pairs(lay, after)))), lay

    return st.tuples(phyp_layouts(), again).map(lambda t: render(*t))


def walks(lifecycle: Lifecycle, version: KernelVersion, start: KernelState | None = None,
          names: tuple[str, ...] | None = None, max_size: int = 12) -> st.SearchStrategy[list[tuple[str, KernelState]]]:
    """Lives of a *lifecycle* machine: ``(transition, state after it)`` pairs, each applicable in turn.

    A life starts from *start* (default: just booted) and draws from *names*
    (default: every transition), skipping those the current state refuses.
    A transition whose condition fails but has an ``otherwise`` applies: a
    crash of an unarmed machine is a reboot.
    """
    if max_size < 0:
        raise ValueError(f"max_size must be at least 0, not {max_size}")
    pool = tuple(names) if names is not None else tuple(lifecycle.transitions)
    unknown = [n for n in pool if n not in lifecycle.transitions]
    if unknown:
        raise ValueError(f"{lifecycle.platform} has no transition {', '.join(unknown)}")
    return _walks(lifecycle, version, start if start is not None else lifecycle.boot(version), pool, max_size)


@st.composite
def _walks(draw: st.DrawFn, lifecycle: Lifecycle, version: KernelVersion, state: KernelState, pool: tuple[str, ...],
           max_size: int) -> list[tuple[str, KernelState]]:
    steps: list[tuple[str, KernelState]] = []
    for _ in range(draw(st.integers(0, max_size))):
        possible = []
        for name in pool:
            try:
                possible.append((name, lifecycle.fire(state, name, version)[0]))
            except TransitionRefused:
                continue
        if not possible:
            break
        name, state = draw(st.sampled_from(possible))
        steps.append((name, state))
    return steps
