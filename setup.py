"""Build the Cython kernels in tinytorch/_kernels/ (everything else is in pyproject.toml).

Each ``tinytorch/_kernels/<name>.pyx`` becomes the extension ``tinytorch._kernels.<name>``, compiled
with -O3 and OpenMP when the compiler supports it. Without OpenMP the kernels still build and run,
serially, so an install never fails for want of it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_DIR = Path("tinytorch") / "_kernels"
PLAIN_PROBE = "int main(void) { return 0; }\n"
OPENMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def compiler_accepts(compiler_cmd: list[str], flags: list[str], source: str = PLAIN_PROBE) -> bool:
    """Compile and link a tiny program with ``flags``; True when that works."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        cmd = [*compiler_cmd, *flags, str(src), "-o", str(Path(tmp) / "probe")]
        try:
            result = subprocess.run(cmd, capture_output=True, check=False)
        except OSError:
            return False
        return result.returncode == 0


class BuildKernels(build_ext):
    """build_ext that adds OpenMP flags only when the compiler accepts them."""

    def build_extensions(self):
        compiler_cmd = list(getattr(self.compiler, "compiler_so", None) or ["cc"])[:1]
        use_openmp = os.environ.get("TINYTORCH_NO_OPENMP") != "1" and compiler_accepts(
            compiler_cmd, ["-fopenmp"], OPENMP_PROBE
        )
        if not use_openmp:
            print("tinytorch: building the kernels without OpenMP (they will run on one thread)", file=sys.stderr)
        # The kernels are built on the machine that runs them (pip install -e), so they may use its
        # whole instruction set (AVX2/FMA where present: 8 floats per instruction instead of SSE2's 4).
        # TINYTORCH_PORTABLE=1 builds for the baseline CPU instead, e.g. for a shared network drive.
        native = (
            ["-march=native"]
            if os.environ.get("TINYTORCH_PORTABLE") != "1" and compiler_accepts(compiler_cmd, ["-march=native"])
            else []
        )
        for ext in self.extensions:
            # -fno-math-errno: no kernel reads errno, and keeping it makes GCC branch around every
            # sqrt, which stops loops such as the optimizer steps from vectorising (measured ~3x slower).
            # -fno-trapping-math: no kernel relies on floating-point traps; without it GCC will not turn
            # a float comparison into a vector select, so a loop with a clamp or a mask stays scalar
            # (the softmax's exp loop ran at a fifth of its vector speed).
            flags = ["-O3", "-fno-math-errno", "-fno-trapping-math", *native]
            ext.extra_compile_args = [*flags, *(["-fopenmp"] if use_openmp else [])]
            ext.extra_link_args = ["-fopenmp"] if use_openmp else []
        super().build_extensions()


def kernel_extensions() -> list[Extension]:
    return [
        Extension(
            f"tinytorch._kernels.{pyx.stem}",
            [str(pyx)],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for pyx in sorted(KERNEL_DIR.glob("*.pyx"))
    ]


setup(
    ext_modules=cythonize(
        kernel_extensions(),
        # Bounds and wraparound checks are switched off per function, on the typed loops only:
        # switched off file-wide they would also make Python-level indexing such as shape[-1] unsafe.
        compiler_directives={"language_level": 3},
    ),
    cmdclass={"build_ext": BuildKernels},
)
