"""The kernel's sscanf and kstrto* as release_region and fadump's files apply them."""

from __future__ import annotations

import errno
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from abi_specs import WriteRejected, builtin_spec
from abi_specs import strategies as abi_st
from abi_specs.kscan import KstrtoxError, kernel_sscanf, kstrtoint, kstrtoul

RELEASE = builtin_spec().get("release_region")
MASK = (1 << 64) - 1

# An independent statement of what sscanf("%lx %lx") scans, as one regular
# expression: white space (the kernel's, 0xA0 included), an optional 0x whose
# digits may be missing, else at least one hex digit.
# Atomic groups and possessive quantifiers: the kernel never backtracks.
_WS = rb"[ \t\n\v\f\r\xa0]*+"
_NUM = rb"(?>0[xX](?P<%s>[0-9a-fA-F]*+)|(?P<%s>[0-9a-fA-F]++))"
_ORACLE = re.compile(_WS + _NUM % (b"a1", b"a2") + _WS + _NUM % (b"b1", b"b2"))


def oracle(data: bytes) -> tuple[int, int] | None:
    data = data.split(b"\0", 1)[0]
    m = _ORACLE.match(data)
    if not m:
        return None
    a = m.group("a1") if m.group("a1") is not None else m.group("a2")
    b = m.group("b1") if m.group("b1") is not None else m.group("b2")
    return int(a or b"0", 16) & MASK, int(b or b"0", 16) & MASK


def scan(data: bytes) -> tuple[int, int] | None:
    try:
        v = RELEASE.write.parse(data)
    except WriteRejected as exc:
        assert exc.errno == errno.EINVAL
        return None
    return v["start"], v["length"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"0x40000000 0x10000000", (0x40000000, 0x10000000)),  # the kernel comment's example
        (b"0x40000000 0x10000000\n", (0x40000000, 0x10000000)),
        (b"1024 10", (0x1024, 0x10)),  # digits are always hex
        (b"  \t0X1f\n\n20junk", (0x1F, 0x20)),
        (b"0x 20", (0, 0x20)),  # a bare 0x converts to 0 and scanning resumes
        (b"0xg 1", None),
        (b"10abc 20", (0x10ABC, 0x20)),
        (b"10 20 30", (0x10, 0x20)),  # anything after the second number is ignored
        (b"1111111111111111111111 1", (0x1111111111111111, 1)),  # overflow keeps the low 64 bits
        (b"\xa010\xa020", (0x10, 0x20)),  # the kernel's isspace() includes 0xA0
        (b"10", None),
        (b"", None),
        (b"\n", None),
        (b"-1 2", None),  # no sign for %x
        (b"+1 2", None),
        (b"1 -2", None),
        (b"10,20", None),
        (b"10\x0020", None),  # sysfs hands store() a C string
        (b"x10 20", None),
    ],
)
def test_release_region_write_known_answers(data: bytes, expected: tuple[int, int] | None) -> None:
    assert scan(data) == expected
    assert oracle(data) == expected


def test_rejection_names_offset_and_token() -> None:
    with pytest.raises(WriteRejected) as info:
        RELEASE.write.parse(b"0x10,0x20")
    message = str(info.value)
    assert "EINVAL" in message
    assert "offset 4" in message
    assert "hex digits for length" in message


@given(abi_st.sscanf_writes(RELEASE))
def test_generated_writes_scan_as_built(case: tuple[bytes, dict[str, int] | None]) -> None:
    data, expected = case
    got = scan(data)
    assert got == (None if expected is None else (expected["start"], expected["length"]))


@given(st.binary(max_size=40))
@example(b"0x")
@example(b"0x0x 1")
@example(b"0 0x")
def test_scanner_agrees_with_regex_oracle(data: bytes) -> None:
    assert scan(data) == oracle(data)


@given(st.text(st.sampled_from("0123456789abcdefxX \t\n-+,"), max_size=30))
def test_scanner_agrees_with_oracle_on_likely_text(text: str) -> None:
    data = text.encode()
    assert scan(data) == oracle(data)


def test_scanf_signed_and_widths() -> None:
    r = kernel_sscanf(b"-12 0x7f 300", "%d %hhx %hhu", ["a", "b", "c"])
    assert r.values == (-12, 0x7F, 300 & 0xFF)
    assert kernel_sscanf(b"- 1", "%d", ["a"]).values == ()
    assert kernel_sscanf(b"0x1f", "%i", ["a"]).values == (0x1F,)
    assert kernel_sscanf(b"017", "%i", ["a"]).values == (0o17,)


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"1", 1), (b"1\n", 1), (b"01", 1), (b"0x1", 1), (b"+1", 1), (b"-0x1", -1), (b"0", 0), (b"017", 15),
     (b"2147483647", 2**31 - 1), (b"-2147483648", -(2**31))],
)
def test_kstrtoint_accepts(data: bytes, value: int) -> None:
    assert kstrtoint(data) == value


@pytest.mark.parametrize(
    ("data", "err"),
    [(b"", errno.EINVAL), (b" 1", errno.EINVAL), (b"1 ", errno.EINVAL), (b"1\n\n", errno.EINVAL),
     (b"08", errno.EINVAL), (b"0x", errno.EINVAL), (b"+-1", errno.EINVAL), (b"1x", errno.EINVAL),
     (b"2147483648", errno.ERANGE), (b"-2147483649", errno.ERANGE), (b"99999999999999999999", errno.ERANGE)],
)
def test_kstrtoint_rejects(data: bytes, err: int) -> None:
    with pytest.raises(KstrtoxError) as info:
        kstrtoint(data)
    assert info.value.errno == err


@given(st.integers(0, (1 << 64) - 1), st.sampled_from(["{:d}", "{:#x}", "0{:o}", "{:#X}"]), st.booleans())
def test_kstrtoul_reads_every_spelling(value: int, spelling: str, newline: bool) -> None:
    text = spelling.format(value)
    if text == "00":  # octal zero spelled with its prefix
        text = "0"
    assert kstrtoul((text + ("\n" if newline else "")).encode()) == value


@pytest.mark.parametrize(
    ("name", "data", "err"),
    [("fadump/registered", b"2", errno.EINVAL), ("fadump/registered", b"yes", errno.EINVAL),
     ("fadump/release_mem", b"0", errno.EINVAL), ("fadump/release_mem", b" 1", errno.EINVAL),
     ("fadump/bootargs_append", b"x" * 2048, errno.EINVAL), ("kexec_crash_size", b"-", errno.EINVAL)],
)
def test_attribute_writes_rejected(name: str, data: bytes, err: int) -> None:
    with pytest.raises(WriteRejected) as info:
        builtin_spec().get(name).write.parse(data, name)
    assert info.value.errno == err
    assert name in str(info.value)


def test_attribute_writes_accepted() -> None:
    spec = builtin_spec()
    assert spec.get("fadump/registered").write.parse(b"0x1\n") == {"registered": 1}
    assert spec.get("fadump/release_mem").write.parse(b"1\n") == {"release": 1}
    assert spec.get("fadump/bootargs_append").write.parse(b"crashkernel=1G\n") == {"params": "crashkernel=1G"}
    assert spec.get("kexec_crash_size").write.parse(b"0x10000000") == {"bytes": 0x10000000}
