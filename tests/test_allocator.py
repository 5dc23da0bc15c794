"""The allocator policy TinyTorch sets at import: freed large arrays are reused, not faulted in afresh."""

import os
import subprocess
import sys

import pytest

# A step's worth of arrays: six 8 MiB arrays alive together, then all freed, 20 times. With glibc's own
# policy the freed 48 MiB exceed its trim threshold and go back to the system, so every step faults
# many of its pages in afresh (about 3,000 here); with TinyTorch's policy the same pages come back.
PROBE = """
import resource, numpy as np, tinytorch
from tinytorch.core.allocator import allocator_policy
def step():
    arrays = [np.ones(1 << 21, np.float32) for _ in range(6)]
    del arrays
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(allocator_policy(), "|", (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def probe(**env: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout
    policy, faults = out.rsplit("|", 1)
    return policy.strip(), float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="the policy is set through glibc's mallopt; other C libraries keep their own")
def test_large_arrays_are_reused_instead_of_faulted_in_again():
    tuned_policy, tuned_faults = probe()
    system_policy, system_faults = probe(TINYTORCH_MALLOC="system")
    assert tuned_policy.startswith("glibc: heap for blocks up to") and system_policy == "system"
    assert system_faults > 1000  # fresh memory every step
    assert tuned_faults < 100
