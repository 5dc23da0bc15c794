"""The matmul kernel: the reference (np.matmul) and the compiled twin that runs on the kernels' threads.

The compiled ``matmul`` splits a product between the OpenMP threads and has each compute its block
with a one-thread call of NumPy's own OpenBLAS; these tests check every split (by columns, by the
summed axis), every operand layout BLAS takes (rows or columns contiguous), the fallbacks, and that
the calling thread's BLAS setting comes back as it was.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinytorch._kernels import blas_symbols, reference
from tinytorch.core import kernels

gemm = kernels.compiled_module("gemm")
needs_compiled = pytest.mark.skipif(gemm is None, reason="the compiled kernels are not built")


def _numpy_openblas_version() -> tuple[int, ...] | None:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    if "openblas" not in str(blas.get("name", "")).lower():
        return None
    return tuple(int(part) for part in str(blas.get("version", "0")).split(".")[:3])


NUMPY_OPENBLAS = _numpy_openblas_version()
needs_local_threads = pytest.mark.skipif(
    NUMPY_OPENBLAS is None or NUMPY_OPENBLAS < (0, 3, 27),
    reason=f"NumPy's BLAS is not OpenBLAS 0.3.27+ (the first with openblas_set_num_threads_local): {NUMPY_OPENBLAS}",
)


@pytest.fixture
def compiled_matmul(monkeypatch):
    """The compiled matmul with no size floor (MIN_WORK keeps tiny products on np.matmul), on two threads."""
    monkeypatch.setattr(gemm, "MIN_WORK", 0)
    before = kernels.get_num_threads()
    kernels.set_num_threads(2)
    yield gemm.matmul
    kernels.set_num_threads(before)


@pytest.fixture
def threaded(compiled_matmul):
    """The compiled matmul, which must have found NumPy's BLAS: every product on the kernels' threads."""
    assert gemm.installed(), kernels.products()
    return compiled_matmul


def operand(rng, shape, dtype, transposed):
    """A (rows, cols) array, C-contiguous or the transpose of a C-contiguous one (BLAS's two layouts)."""
    if transposed:
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    return rng.standard_normal(shape).astype(dtype)


@needs_local_threads
@needs_compiled
def test_numpy_s_openblas_is_found_and_installed():
    found = blas_symbols.find_cblas()
    assert found is not None and "openblas" in found["path"].lower()
    assert all(found[k] for k in ("sgemm", "dgemm", "set_local_threads"))
    assert gemm.installed() and "kernels' threads" in kernels.products()
    with kernels.use("reference"):
        assert "NumPy's BLAS" in kernels.products()


@needs_local_threads
@needs_compiled
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # set once, read only
@given(
    m=st.integers(1, 300), k=st.integers(1, 70), n=st.integers(1, 300),
    dtype=st.sampled_from([np.float32, np.float64]),
    ta=st.booleans(), tb=st.booleans(), accumulate=st.booleans(), seed=st.integers(0, 2**16),
)
def test_matches_numpy_on_every_split_and_layout(threaded, m, k, n, dtype, ta, tb, accumulate, seed):
    # m >= n and m >= 128 splits the rows between the two threads, n >= 128 the columns, and
    # smaller products the summed axis
    rng = np.random.default_rng(seed)
    a, b = operand(rng, (m, k), dtype, ta), operand(rng, (k, n), dtype, tb)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    if accumulate:
        start = rng.standard_normal((m, n)).astype(dtype)
        got = threaded(a, b, out=start.copy(), accumulate=True)
        expected = expected + start
    else:
        got = threaded(a, b)
    assert got.dtype == dtype and got.shape == (m, n)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * np.sqrt(k))


@needs_local_threads
@needs_compiled
def test_writes_into_out_and_returns_it(threaded):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal((30, 200)).astype(np.float32)
    out = np.full((40, 200), np.nan, np.float32)
    assert threaded(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@needs_local_threads
@needs_compiled
def test_the_calling_thread_gets_its_blas_setting_back(threaded):
    # each thread asks for one-thread BLAS calls while it computes its block; afterwards the main
    # thread must be as it was, or every later np.matmul in the program would run on one core
    found = blas_symbols.find_cblas()
    set_local = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(found["set_local_threads"])
    before = set_local(3)  # a value no code sets, so that a leftover 1 shows (the setting is process-wide here)
    try:
        for _ in range(20):  # a wrong restore can depend on which thread finishes last
            threaded(np.ones((300, 64), np.float32), np.ones((64, 100), np.float32))  # rows split
            threaded(np.ones((64, 64), np.float32), np.ones((64, 256), np.float32))  # columns split
            threaded(np.ones((64, 256), np.float32), np.ones((256, 8), np.float32))  # summed axis split
            assert set_local(3) == 3
    finally:
        set_local(before)


@needs_local_threads
@needs_compiled
def test_products_in_two_python_threads_at_once_leave_the_setting_as_it_was(threaded):
    # the setting is one value for the whole process: the last product to end must put it back,
    # whichever thread runs it, and every answer stays right meanwhile
    found = blas_symbols.find_cblas()
    set_local = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(found["set_local_threads"])
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 64)), rng.standard_normal((64, 200))
    expected = a @ b
    wrong = []

    def work():
        for _ in range(30):
            if not np.allclose(threaded(a, b), expected, rtol=1e-12, atol=1e-10):
                wrong.append(1)

    before = set_local(3)
    try:
        workers = [threading.Thread(target=work) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not wrong and set_local(3) == 3
    finally:
        set_local(before)


@needs_compiled
@pytest.mark.parametrize("case", ["strided", "mixed dtypes", "integers", "empty"])
def test_other_operands_fall_back_to_numpy(compiled_matmul, case):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((60, 90)), rng.standard_normal((90, 150))
    if case == "strided":  # neither rows nor columns contiguous: BLAS cannot take it as is
        a = rng.standard_normal((120, 180))[::2, ::2]
    elif case == "mixed dtypes":
        a = a.astype(np.float32)
    elif case == "integers":
        a, b = (a * 10).astype(np.int64), (b * 10).astype(np.int64)
    else:
        a, b = a[:, :0], b[:0]
    got = compiled_matmul(a, b)
    expected = np.matmul(a, b)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("matmul", [reference.matmul] + ([gemm.matmul] if gemm else []), ids=lambda f: f.__module__)
@pytest.mark.parametrize(
    "args, message",
    [
        ((np.ones((2, 3)), np.ones((4, 5))), r"a has shape \(2, 3\) and b \(4, 5\); a's columns must match b's rows"),
        ((np.ones(3), np.ones((3, 2))), r"a must be 2-D, got shape \(3,\)"),
        (([[1.0]], np.ones((1, 1))), r"a must be a NumPy array, got list"),
        ((np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 2))), r"out must be a \(2, 4\) array of float64, got \(4, 2\) float64"),
        ((np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 2)).T), r"out must be C-contiguous"),
    ],
)
def test_bad_operands_are_refused_naming_the_kernel(matmul, args, message):
    with pytest.raises((TypeError, ValueError), match="matmul: " + message):
        matmul(*args)


@pytest.mark.parametrize("matmul", [reference.matmul] + ([gemm.matmul] if gemm else []), ids=lambda f: f.__module__)
def test_accumulate_needs_out(matmul):
    with pytest.raises(ValueError, match="matmul: accumulate=True adds into out, so out must be given"):
        matmul(np.ones((2, 3)), np.ones((3, 4)), accumulate=True)


def test_no_openblas_in_a_memory_map_finds_nothing(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f10 r-xp 00000000 08:01 42 /usr/lib/libc.so.6\n7f20-7f30 rw-p 00000000 00:00 0\n")
    assert blas_symbols.loaded_openblas(str(maps)) == []
    maps.write_text("7f00-7f10 r-xp 00000000 08:01 42 /site/numpy.libs/libscipy_openblas64_-x.so\n")
    assert blas_symbols.loaded_openblas(str(maps)) == ["/site/numpy.libs/libscipy_openblas64_-x.so"]
    assert blas_symbols.loaded_openblas(str(tmp_path / "absent")) == []


WAIT_POLICY = """
import json, os
{imports}
from tinytorch.core import kernels
print(json.dumps({{"env": {{name: os.environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}},
                  "policy": kernels.wait_policy()}}))
"""


def _wait_policy(imports: str = "import tinytorch", **env: str) -> dict:
    """What a fresh interpreter's environment holds after ``imports`` (OpenMP reads it once, at load)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    out = subprocess.run([sys.executable, "-c", WAIT_POLICY.format(imports=imports)], capture_output=True, text=True,
                         check=True, timeout=120, env={**environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kernel_threads_spin_briefly_then_sleep_unless_told_otherwise():
    got = _wait_policy()
    assert got["env"] == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "30000"}
    assert got["policy"] == "OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT=30000: they spin that many rounds, then sleep"
    assert _wait_policy(GOMP_SPINCOUNT="0")["env"] == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}


def test_kernel_threads_do_not_spin_when_numpy_s_blas_threads_do():
    # NumPy imported first: OpenBLAS's threads spin after each product (TinyTorch came too late to
    # stop them), and two spinning pools would hold both cores
    for got in (_wait_policy("import numpy, tinytorch"), _wait_policy(OPENBLAS_THREAD_TIMEOUT="28")):
        assert got["env"] == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}
        assert "they sleep at once" in got["policy"]
