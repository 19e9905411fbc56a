"""The package as pyproject.toml declares it: every package of the checkout, and the data they read."""

from __future__ import annotations

import tomllib

import setuptools

from ..support import REPO


def test_the_package_list_names_every_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = set(setuptools.find_packages(str(REPO), include=["abi_specs*", "abi_harness*", "mockfs*", "collectors*"]))
    assert listed - {"abi_harness_fixtures"} == found
    assert project["tool"]["setuptools"]["package-dir"] == {"abi_harness_fixtures": "fixtures"}
    data = project["tool"]["setuptools"]["package-data"]
    assert {"abi_specs", "abi_harness_fixtures", "mockfs.oracle"} <= set(data)
