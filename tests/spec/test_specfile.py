"""Spec files: the built-in ones load, and broken ones get one clear error naming file and key."""

from __future__ import annotations

import pytest

from abi_specs import SpecFileError, builtin_spec
from abi_specs.specfile import load_spec_file, load_spec_text

GOOD = '''
[[attribute]]
name = "example"
path = "/sys/kernel/example"
mode = 0o644
platforms = ["kdump"]
present = ["capture"]
date = "Nov 2026"
kernel_version = "6.20"
contact = "kexec@lists.infradead.org"
description = "An example."
read = { format = "%d\\n", fields = ["value"] }
write = { parser = "kstrtoint", fields = ["value"] }
'''


def load(text: str):
    return load_spec_text([("draft.toml", text)], base=builtin_spec())


def test_builtin_spec_covers_the_issue() -> None:
    spec = builtin_spec()
    paths = {f.path for f in spec.files}
    for path in [
        "/sys/kernel/release_region", "/sys/kernel/phyp_dump_active",
        "/proc/device-tree/rtas/ibm,configure-kernel-dump", "/proc/device-tree/rtas/ibm,configure-kernel-dump-sizes",
        "/proc/device-tree/rtas/ibm,kernel-dump",
        "/sys/kernel/fadump/enabled", "/sys/kernel/fadump/registered", "/sys/kernel/fadump/release_mem",
        "/sys/kernel/fadump/mem_reserved", "/sys/kernel/fadump/hotplug_ready", "/sys/kernel/fadump/bootargs_append",
        "/sys/kernel/fadump_enabled", "/sys/kernel/fadump_registered", "/sys/kernel/fadump_release_mem",
        "/sys/kernel/vmcoreinfo", "/sys/kernel/kexec_crash_loaded", "/sys/kernel/kexec_crash_size", "/proc/vmcore",
    ]:
        assert path in paths, path
    modes = {f.path: f.mode for f in spec.files}
    assert modes["/proc/vmcore"] == 0o400
    assert modes["/sys/kernel/release_region"] == 0o600
    assert modes["/sys/kernel/fadump/release_mem"] == 0o200


def test_a_good_draft_loads() -> None:
    spec = load(GOOD)
    entry = spec.get("/sys/kernel/example")
    assert entry.read.parse("-5\n") == {"value": -5}
    assert entry.source == "draft.toml"


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('mode = 0o644', 'mode = "0644"'), "attribute[0].mode", "expected int"),
        (('mode = 0o644', 'mode = 0o444'), "attribute[0].mode", "no write bit"),
        (('platforms = ["kdump"]', 'platforms = ["s390"]'), "attribute[0].platforms[0]", "unknown platform 's390'"),
        (('present = ["capture"]', 'present = ["booted"]'), "attribute[0].present[0]", "unknown state"),
        (('format = "%d\\n"', 'format = "%q\\n"'), "attribute[0].read.format", "unsupported printf conversion"),
        (('fields = ["value"] }\nwrite', 'fields = [] }\nwrite'), "attribute[0].read.format", "more conversions"),
        (('parser = "kstrtoint"', 'parser = "atoi"'), "attribute[0].write.parser", "unknown parser"),
        (('name = "example"', 'name = "release_region"'), "attribute[0].name", "already defined"),
        (('contact = "kexec@lists.infradead.org"\n', ''), "attribute[0].contact", "missing"),
        (('description = "An example."', 'descripton = "An example."'), "attribute[0].descripton", "unknown key"),
        (('path = "/sys/kernel/example"', 'path = "sys/kernel/example"'), "attribute[0].path", "absolute path"),
        (('description = "An example."', 'description = "An example."\nactions = { 1 = "explode" }'),
         "attribute[0].actions.1", "'explode' is not a transition of platform kdump"),
    ],
)
def test_broken_drafts_name_file_key_and_problem(change: tuple[str, str], key: str, problem: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(SpecFileError) as info:
        load(GOOD.replace(old, new, 1))
    message = str(info.value)
    assert message.startswith(f"draft.toml: {key}: "), message
    assert problem in message, message


def test_not_toml_and_missing_file(tmp_path) -> None:
    with pytest.raises(SpecFileError, match=r"^draft.toml: not valid TOML"):
        load("[[attribute]\n")
    with pytest.raises(SpecFileError, match="No such file"):
        load_spec_file(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"name = '\xff'\n")
    with pytest.raises(SpecFileError, match="not UTF-8"):
        load_spec_file(bad)
