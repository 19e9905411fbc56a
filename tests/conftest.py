"""Shared test set-up: hypothesis profiles and the real command line (helpers live in support.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from .support import run_cli

# CI runs many examples; a developer's run fewer. Neither has a deadline: the
# machine is shared and noisy, and speed is measured in bench/, not here.
settings.register_profile("ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def cli():
    """The real command line: ``cli("check", path)`` returns the finished process."""
    return run_cli
