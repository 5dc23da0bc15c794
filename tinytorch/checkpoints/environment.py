"""Checkpoint 00, Environment: "Can I configure my TinyTorch development environment?"

Led to by lesson 01 (``parse_version``, ``version_at_least``). The environment checks run, with
the student's version functions deciding whether Python and NumPy are new enough; every required
check must pass; the compiled kernels must be built and compute what their NumPy reference
computes; and the student's ``parse_version`` must read this interpreter's and NumPy's versions
as they really are.
"""

from __future__ import annotations

import platform
import sys

import numpy as np

from tinytorch.checkpoints.probe import Probe


def run(probe: Probe) -> None:
    from tinytorch import system
    from tinytorch._kernels import reference
    from tinytorch.core import kernels

    probe.step("reading this machine's versions with parse_version")
    probe.check(
        "parse_version reads this Python's version",
        tuple(system.parse_version(platform.python_version()))[:3] == tuple(sys.version_info[:3]),
        f"parse_version({platform.python_version()!r}) gave {system.parse_version(platform.python_version())}",
    )
    numpy_release = tuple(int(p) for p in np.__version__.split(".")[:2])
    probe.check(
        "parse_version reads NumPy's version",
        tuple(system.parse_version(np.__version__))[:2] == numpy_release,
        f"parse_version({np.__version__!r}) gave {system.parse_version(np.__version__)}",
    )

    probe.step("running the environment checks (version_at_least decides Python and NumPy)")
    checks = system.run_checks()
    required = [c for c in checks if c.required]
    failing = [f"{c.name}: {c.detail}" for c in required if not c.ok]
    probe.measure("required environment checks passing", len(required) - len(failing), at_least=len(required), headline=True)
    probe.check("no required check fails", not failing, "; ".join(failing))

    probe.step("comparing the compiled kernels with their NumPy reference")
    probe.check("compiled kernels are built", kernels.compiled_available(), f"build them with: {kernels.BUILD_COMMAND}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with kernels.use("compiled"):
        compiled = kernels.conv2d_forward(x, w, None, (1, 1), (1, 1)), kernels.softmax_forward(x.reshape(8, -1))
    expected = reference.conv2d_forward(x, w, None, (1, 1), (1, 1)), reference.softmax_forward(x.reshape(8, -1))
    error = max(float(np.abs(c - e).max() / (np.abs(e).max() + 1e-12)) for c, e in zip(compiled, expected))
    probe.measure("compiled vs reference, largest relative difference", error, at_most=1e-5)
