"""TinyTorch asks OpenBLAS's threads to sleep after a product, and only when it is imported before NumPy."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinytorch.core.blas_wait import ENV_VAR, SLEEP_AT_ONCE


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (the setting matters only before NumPy loads) and parse its last line."""
    environ = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environ,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


POLICY = """
    import json, os
    {imports}
    from tinytorch.core.blas_wait import blas_wait_policy
    print(json.dumps({{"env": os.environ.get("{var}"), "policy": blas_wait_policy()}}))
"""


def test_importing_tinytorch_first_sets_the_shortest_spin():
    got = run_python(POLICY.format(imports="import tinytorch", var=ENV_VAR))
    assert got == {"env": SLEEP_AT_ONCE, "policy": f"{ENV_VAR}={SLEEP_AT_ONCE}"}


def test_a_value_in_the_environment_wins():
    got = run_python(POLICY.format(imports="import tinytorch", var=ENV_VAR), **{ENV_VAR: "28"})
    assert got == {"env": "28", "policy": f"{ENV_VAR}=28"}


def test_numpy_imported_first_is_reported_not_changed():
    got = run_python(POLICY.format(imports="import numpy, tinytorch", var=ENV_VAR))
    assert got["env"] is None
    assert "NumPy was imported before TinyTorch" in got["policy"] and "import tinytorch first" in got["policy"]


SPIN = """
    import json, statistics, time
    {imports}
    a = np.ones((1024, 1024), dtype=np.float32)
    spins = []
    for _ in range(3):
        a @ a  # wakes BLAS's worker threads
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(0.05)  # the main thread sleeps: any CPU time now is a BLAS thread waiting for work
        spins.append((time.process_time() - cpu) / (time.perf_counter() - wall))
    # The median of three windows: one disturbed window (the machine busy elsewhere) decides nothing either way.
    print(json.dumps({{"spin": statistics.median(spins)}}))
"""


def _openblas() -> bool:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return "openblas" in str(blas.get("name", "")).lower()


@pytest.mark.skipif(not _openblas(), reason="the variable is OpenBLAS's; NumPy here uses another BLAS")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenBLAS starts no worker thread to spin")
def test_openblas_threads_stop_spinning_after_a_product():
    threads = {"OPENBLAS_NUM_THREADS": "2"}
    # Control: OpenBLAS's own setting keeps a worker spinning through the main thread's sleep.
    spinning = run_python(SPIN.format(imports="import numpy as np"), **threads)["spin"]
    quiet = run_python(SPIN.format(imports="import tinytorch\n    import numpy as np"), **threads)["spin"]
    assert spinning > 0.3, f"the control should spin (busy {spinning:.0%} of a core while idle)"
    assert quiet < 0.1, f"BLAS threads still busy {quiet:.0%} of a core while idle"
