"""The machine's answers to the system calls the runner's seal intercepts, and to its life's events.

The runner (:mod:`mockfs.sandbox.inside`) turns each sealed call of the program
into a request on the mock's control file; :func:`handle` answers it as the
mocked machine's kernel would: kexec_load and kexec_file_load are checked the
kernel's way (:mod:`abi_specs.kexec`) and, when they pass, load or unload the
crash kernel (the spec lifecycle's ``load``/``unload``); reboot(2) reboots the
machine; module, clock and swap calls are refused and recorded; uname answers
with the machine's kernel release.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from abi_specs import kexec
from abi_specs.lifecycle import TransitionRefused

if TYPE_CHECKING:
    from .machine import LiveMachine

#: What refused calls fail with: the mock has no modules, clock or swap to change.
REFUSED_ERRNO = errno.EPERM


def _refused(refusal: kexec.Refusal) -> dict[str, Any]:
    return {"errno": refusal.errno, "reason": refusal.reason}


def _kexec_file_load(m: LiveMachine, req: dict[str, Any]) -> dict[str, Any]:
    flags = int(req["flags"])
    names = kexec.kexec_file_flags()
    kernel = bytes.fromhex(req["kernel_head"]) if req.get("kernel_head") is not None else None
    cmdline = bytes.fromhex(req.get("cmdline", ""))
    on_crash = bool(flags & names["KEXEC_FILE_ON_CRASH"])
    refusal = kexec.check_kexec_file_load(flags, kernel, cmdline, m.state.crash_size, m.fixture.arch,
                                          has_initrd=req.get("initrd") is not None,
                                          in_capture=m.state.kernel.kernel == "capture")
    if refusal:
        m.state.event("kexec-refused", syscall="kexec_file_load", errno=errno.errorcode[refusal.errno],
                      reason=refusal.reason, comm=req.get("comm"))
        return _refused(refusal)
    loaded = {"syscall": "kexec_file_load", "flags": flags, "kernel": req.get("kernel"), "initrd": req.get("initrd"),
              "cmdline": cmdline.rstrip(b"\0").decode("utf-8", "replace"), "comm": req.get("comm"),
              "argv": req.get("argv")}
    return _apply_load(m, flags & names["KEXEC_FILE_UNLOAD"] != 0, on_crash, loaded)


#: kexec-tools' options naming what kexec_load's opaque segments were made of.
_KEXEC_TOOLS_OPTIONS = {"--command-line": "cmdline", "--append": "cmdline", "--initrd": "initrd",
                        "--ramdisk": "initrd"}


def _kexec_tools_args(argv: list[str]) -> dict[str, str]:
    """The command line, initrd and kernel of a kexec_load, from the caller's own arguments.

    kexec_load hands the kernel prepared memory segments, in which the command
    line and the initrd are no longer marked; kexec-tools (the one caller of
    the call in practice) names them on its command line.
    """
    found: dict[str, str] = {}
    words = iter(argv[1:])
    for word in words:
        name, eq, value = word.partition("=")
        if name in _KEXEC_TOOLS_OPTIONS:
            found[_KEXEC_TOOLS_OPTIONS[name]] = value if eq else next(words, "")
        elif not word.startswith("-"):
            found["kernel"] = word
    return found


def _kexec_load(m: LiveMachine, req: dict[str, Any]) -> dict[str, Any]:
    flags = int(req["flags"])
    segments = [(int(mem), int(memsz)) for mem, memsz in req.get("segments", [])]
    ck = m.fixture.crashkernel
    crash_range = (ck[0], m.state.crash_size) if ck and m.state.crash_size else None
    refusal = kexec.check_kexec_load(flags, len(segments), m.fixture.arch_info.e_machine, m.state.crash_size,
                                     segments, crash_range, in_capture=m.state.kernel.kernel == "capture")
    if refusal:
        m.state.event("kexec-refused", syscall="kexec_load", errno=errno.errorcode[refusal.errno],
                      reason=refusal.reason, comm=req.get("comm"))
        return _refused(refusal)
    on_crash = bool(flags & kexec.kexec_load_flags()["KEXEC_ON_CRASH"])
    loaded = {"syscall": "kexec_load", "flags": flags, "entry": req.get("entry"), "segments": req.get("segments"),
              "comm": req.get("comm"), "argv": req.get("argv"), **_kexec_tools_args(req.get("argv") or [])}
    return _apply_load(m, not segments, on_crash, loaded)


def _apply_load(m: LiveMachine, unload: bool, on_crash: bool, loaded: dict[str, Any]) -> dict[str, Any]:
    state = m.state
    if on_crash:
        m.fire("unload" if unload else "load", syscall=loaded["syscall"], comm=loaded.get("comm"))
        state.crash_kernel = None if unload else loaded
    else:  # a kernel for kexec -e: the lifecycle has no dump in it, only kexec_loaded says so
        state.kernel = state.kernel.with_values({"loaded": not unload})
        state.kexec_kernel = None if unload else loaded
        state.event("kexec-unload" if unload else "kexec-load", syscall=loaded["syscall"], comm=loaded.get("comm"))
    return {"result": 0}


def _reboot(m: LiveMachine, req: dict[str, Any]) -> dict[str, Any]:
    command = kexec.reboot_command(int(req["magic1"]), int(req["magic2"]), int(req["cmd"]))
    if isinstance(command, kexec.Refusal):
        return _refused(command)
    if command in ("CAD_ON", "CAD_OFF"):
        m.state.event("reboot-cad", command=command, comm=req.get("comm"))
        return {"result": 0}
    if command == "KEXEC" and not m.state.kernel["loaded"]:
        return {"errno": errno.EINVAL, "reason": "no kexec kernel is loaded"}
    m.fire("reboot", command=command, comm=req.get("comm"))
    return {"result": 0, "down": True}  # the machine is going down: the runner ends every process


def _refuse(m: LiveMachine, req: dict[str, Any]) -> dict[str, Any]:
    m.state.event("refused", syscall=req.get("syscall"), comm=req.get("comm"))
    return {"errno": REFUSED_ERRNO, "reason": f"{req.get('syscall')} is not allowed on a mocked machine"}


def _uname(m: LiveMachine, req: dict[str, Any]) -> dict[str, Any]:
    fx = m.fixture
    return {"result": 0, "release": fx.osrelease, "machine": fx.arch, "version": "#1 SMP mock"}


_HANDLERS = {"kexec_file_load": _kexec_file_load, "kexec_load": _kexec_load, "reboot": _reboot,
             "refused": _refuse, "uname": _uname}


def _from_outside(m: LiveMachine, req: dict[str, Any]) -> dict[str, Any]:
    """``abi-harness crash`` / ``reboot`` while a run uses the machine: it goes down under the run."""
    ran = m.fire(req["op"], by=req.get("by", "abi-harness"))
    if m.on_crash is not None:
        m.on_crash(m, 0)
    return {"result": 0, "ran": ran}


def handle(m: LiveMachine, request: dict[str, Any]) -> dict[str, Any]:
    """The machine's answer to one request of the runner (see the module docstring)."""
    op = request.get("op")
    if op == "state":
        return {"result": 0, "state": m.state.to_dict(), "summary": m.summary()}
    if op in ("crash", "reboot") and "pid" not in request:
        with m.lock:
            try:
                answer = _from_outside(m, request)
            except TransitionRefused as exc:
                answer = {"errno": errno.EINVAL, "reason": str(exc)}
        m.changed()
        return answer
    handler = _HANDLERS.get(str(op))
    if handler is None:
        return {"errno": errno.EINVAL, "reason": f"unknown request {op!r}"}
    with m.lock:
        try:
            answer = handler(m, request)
        except TransitionRefused as exc:
            answer = {"errno": errno.EINVAL, "reason": str(exc)}
    if op != "uname":
        m.changed()
    return answer


def crash(m: LiveMachine, by: str) -> list[str]:
    """Crash the machine from outside (``abi-harness crash``); returns the transitions that ran."""
    with m.lock:
        ran = m.fire("crash", by=by)
    m.changed()
    return ran


def reboot(m: LiveMachine, by: str) -> list[str]:
    """Reboot the machine from outside (``abi-harness reboot``)."""
    with m.lock:
        ran = m.fire("reboot", by=by)
    m.changed()
    return ran
