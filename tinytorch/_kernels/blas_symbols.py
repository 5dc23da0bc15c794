"""Find the CBLAS functions of the OpenBLAS that NumPy loaded, for ``gemm.install``.

NumPy loads its BLAS privately (its symbols are not global), so the library is found by its path in
this process's memory map and opened again (the same copy: ``dlopen`` of a loaded library returns
it). Only OpenBLAS 0.3.27 or later has ``openblas_set_num_threads_local``, which asks for one-thread
products until it is set back (gemm.pyx sets it back after each product); without it nothing is
installed and products stay on ``np.matmul``. Linux only (``/proc/self/maps``); elsewhere nothing is found.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

# (single precision, double precision, 64-bit integers?) in the order tried: NumPy's wheels, then plain builds
CBLAS_NAMES = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
    ("cblas_sgemm64_", "cblas_dgemm64_", True),
    ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
    ("cblas_sgemm", "cblas_dgemm", False),
)
LOCAL_THREADS = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local")
GET_THREADS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
               "openblas_get_num_threads")


def loaded_openblas(maps: str = "/proc/self/maps") -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process."""
    try:
        text = Path(maps).read_text()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[5] for line in text.splitlines() if line.count(" ") >= 5 and "openblas" in line.lower()}
    return sorted(p for p in paths if ".so" in Path(p).name)


def _address(library: ctypes.CDLL, name: str) -> int | None:
    try:
        return ctypes.cast(getattr(library, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def find_cblas() -> dict | None:
    """``{"path", "sgemm", "dgemm", "set_local_threads", "get_threads", "ilp64"}`` for NumPy's OpenBLAS, or None.

    ``get_threads`` (OpenBLAS's own thread count) may be None; the others are always there.
    """
    import numpy  # noqa: F401  (NumPy loads its BLAS)

    for path in loaded_openblas():
        library = ctypes.CDLL(path)
        local = next((a for a in (_address(library, n) for n in LOCAL_THREADS) if a), None)
        if local is None:
            continue
        get_threads = next((a for a in (_address(library, n) for n in GET_THREADS) if a), None)
        for single, double, ilp64 in CBLAS_NAMES:
            sgemm, dgemm = _address(library, single), _address(library, double)
            if sgemm and dgemm:
                return {"path": path, "sgemm": sgemm, "dgemm": dgemm, "set_local_threads": local,
                        "get_threads": get_threads, "ilp64": ilp64}
    return None
