"""Shared pytest setup: hypothesis profiles and the framework's seed."""

import os

import pytest
from hypothesis import HealthCheck, settings

# Derandomised in CI so a red run can be reproduced; deadline off because shared 2-core machines are noisy.
settings.register_profile(
    "default", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same framework seed."""
    import tinytorch

    tinytorch.manual_seed(0)
