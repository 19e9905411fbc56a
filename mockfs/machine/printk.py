"""Kernel log buffers in the two layouts dump readers know.

* ``ringbuffer``: the lockless printk_ringbuffer of Linux 5.10+ (descriptor ring,
  info array, text data ring).
* ``printk_log``: the variable-length record buffer of Linux 3.5-5.9.

Both are written into the kernel data region and described in VMCOREINFO with
the sizes and offsets of the kernel's structures (our layouts match x86_64/ppc64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .model import LogRecord

if TYPE_CHECKING:
    from .kernel import KernelData
    from .notes import VmcoreInfo

# Descriptor state lives in the top two bits of state_var (DESC_FLAGS_SHIFT = 62).
_DESC_FINALIZED = 2
_DESC_REUSABLE = 3
_STATE_SHIFT = 62

# struct printk_ringbuffer { prb_desc_ring desc_ring (40); prb_data_ring text_data_ring (32); fail }
_PRB_SIZE = 80
_DESC_SIZE = 24  # struct prb_desc { state_var; text_blk_lpos { begin; next } }
_INFO_SIZE = 88  # struct printk_info { seq; ts_nsec; text_len; facility; flags:level; caller_id; dev_info }
_TEXT_RING_OFFSET = 40

_PRINTK_LOG_SIZE = 16  # struct printk_log { ts_nsec; len; text_len; dict_len; facility; flags:level }


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _bits_for(n: int, minimum: int) -> int:
    """Smallest b >= minimum with 2**b > n."""
    return max(minimum, n.bit_length())


def plant_ringbuffer(kd: KernelData, records: Sequence[LogRecord]) -> None:
    """Write a printk_ringbuffer holding *records* and describe it in VMCOREINFO."""
    texts = [r.text.encode("utf-8") for r in records]
    count_bits = _bits_for(len(records), 5)
    count = 1 << count_bits
    text_total = sum(8 + _align8(len(t)) for t in texts)
    size_bits = _bits_for(text_total, 12)  # 2**size_bits > total: no block ends at the ring's end

    descs = bytearray(_DESC_SIZE * count)
    infos = bytearray(_INFO_SIZE * count)
    ring = bytearray(1 << size_bits)
    lpos = 0
    for i, (rec, text) in enumerate(zip(records, texts, strict=True)):
        block = kd.u64(i) + text.ljust(_align8(len(text)), b"\0")
        ring[lpos : lpos + len(block)] = block
        descs[i * _DESC_SIZE : (i + 1) * _DESC_SIZE] = (
            kd.u64((_DESC_FINALIZED << _STATE_SHIFT) | i) + kd.u64(lpos) + kd.u64(lpos + len(block))
        )
        info = bytearray(_INFO_SIZE)
        info[0:8] = kd.u64(i)  # seq
        info[8:16] = kd.u64(rec.ts_nsec)
        info[16:18] = kd.u16(len(text))
        infos[i * _INFO_SIZE : (i + 1) * _INFO_SIZE] = info
        lpos += len(block)
    if records:
        head_id, tail_id = len(records) - 1, 0
    else:
        # Empty log: one reusable descriptor that readers skip.
        descs[0:8] = kd.u64(_DESC_REUSABLE << _STATE_SHIFT)
        head_id = tail_id = 0

    descs_pa = kd.place(bytes(descs))
    infos_pa = kd.place(bytes(infos))
    ring_pa = kd.place(bytes(ring))
    prb = bytearray(_PRB_SIZE)
    prb[0:4] = kd.u32(count_bits)
    prb[8:16] = kd.u64(kd.kva(descs_pa))
    prb[16:24] = kd.u64(kd.kva(infos_pa))
    prb[24:32] = kd.u64(head_id)
    prb[32:40] = kd.u64(tail_id)
    prb[40:44] = kd.u32(size_bits)
    prb[48:56] = kd.u64(kd.kva(ring_pa))
    prb[56:64] = kd.u64(lpos)  # head_lpos
    prb_pa = kd.place(bytes(prb))
    # SYMBOL(prb) names the pointer variable `prb`, which points at printk_rb_static.
    prb_ptr_pa = kd.place(kd.u64(kd.kva(prb_pa)))

    vi = kd.vmcoreinfo
    vi.symbol("prb", kd.kva(prb_ptr_pa))
    vi.symbol("printk_rb_static", kd.kva(prb_pa))
    vi.symbol("clear_seq", kd.kva(kd.place(kd.u64(0))))
    _describe_ringbuffer(vi)


def _describe_ringbuffer(vi: VmcoreInfo) -> None:
    """The sizes and offsets of the printk_ringbuffer structures, as VMCOREINFO gives them to dump readers."""
    vi.size("printk_ringbuffer", _PRB_SIZE)
    vi.offsets("printk_ringbuffer", [("desc_ring", 0), ("text_data_ring", _TEXT_RING_OFFSET), ("fail", 72)])
    vi.size("prb_desc_ring", 40)
    vi.offsets(
        "prb_desc_ring",
        [("count_bits", 0), ("descs", 8), ("infos", 16), ("head_id", 24), ("tail_id", 32)],
    )
    vi.size("prb_desc", _DESC_SIZE)
    vi.offsets("prb_desc", [("state_var", 0), ("text_blk_lpos", 8)])
    vi.offsets("prb_data_blk_lpos", [("begin", 0), ("next", 8)])
    vi.size("printk_info", _INFO_SIZE)
    vi.offsets(
        "printk_info",
        [("seq", 0), ("ts_nsec", 8), ("text_len", 16), ("caller_id", 20), ("dev_info", 24)],
    )
    vi.size("dev_printk_info", 64)
    vi.offsets("dev_printk_info", [("subsystem", 0)])
    vi.length("printk_info_subsystem", 16)
    vi.offsets("dev_printk_info", [("device", 16)])
    vi.length("printk_info_device", 48)
    vi.size("prb_data_ring", 32)
    vi.offsets("prb_data_ring", [("size_bits", 0), ("data", 8), ("head_lpos", 16), ("tail_lpos", 24)])
    vi.offset("atomic_long_t.counter", 0)


def plant_printk_log(kd: KernelData, records: Sequence[LogRecord]) -> None:
    """Write a 3.5-5.9 style record buffer holding *records* and describe it."""
    chunks = []
    for rec in records:
        text = rec.text.encode("utf-8")
        total = _align8(_PRINTK_LOG_SIZE + len(text))
        head = kd.u64(rec.ts_nsec) + kd.u16(total) + kd.u16(len(text)) + kd.u16(0) + bytes(2)
        chunks.append((head + text).ljust(total, b"\0"))
    used = sum(len(c) for c in chunks)
    # The kernel's buffer is a power of two; leave room for the zero-length wrap marker.
    buf_len = 1 << _bits_for(used + _PRINTK_LOG_SIZE, 12)
    buf = b"".join(chunks).ljust(buf_len, b"\0")
    buf_pa = kd.place(buf)
    vi = kd.vmcoreinfo
    vi.symbol("log_buf", kd.kva(kd.place(kd.u64(kd.kva(buf_pa)))))
    vi.symbol("log_buf_len", kd.kva(kd.place(kd.u32(buf_len))))
    vi.symbol("log_first_idx", kd.kva(kd.place(kd.u32(0))))
    vi.symbol("clear_idx", kd.kva(kd.place(kd.u32(0))))
    vi.symbol("log_next_idx", kd.kva(kd.place(kd.u32(used))))
    vi.size("printk_log", _PRINTK_LOG_SIZE)
    vi.offsets("printk_log", [("ts_nsec", 0), ("len", 8), ("text_len", 10), ("dict_len", 12)])


def expected_dmesg(records: Sequence[LogRecord]) -> str:
    """What vmcore-dmesg (and makedumpfile --dump-dmesg) print for *records*.

    Each line is ``[seconds.micro] text``; bytes that are neither printable
    nor white space are shown as ``\\xNN`` as both tools do.
    """
    out = []
    for rec in records:
        sec, rem = divmod(rec.ts_nsec, 1_000_000_000)
        text = "".join(
            ch if (" " <= ch <= "~" or ch in " \t\n\v\f\r") else f"\\x{ord(ch):02x}"
            for ch in rec.text.encode("utf-8").decode("latin-1")
        )
        out.append(f"[{sec:5d}.{rem // 1000:06d}] {text}\n")
    return "".join(out)
