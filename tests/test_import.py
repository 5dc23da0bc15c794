"""Importing tinytorch: silent when the kernels are built; on the reference, with one warning, when not."""

import subprocess
import sys
import textwrap

from tinytorch.core import kernels


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)


def test_import_prints_nothing():
    result = run_python("import warnings; warnings.simplefilter('error'); import tinytorch, tinytorch.functional")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_without_the_compiled_modules_it_runs_on_the_reference_and_warns_once():
    hidden = ", ".join(repr(f"tinytorch._kernels.{name}") for name in kernels.COMPILED_MODULES)
    result = run_python(f"""
        import sys, warnings
        for name in ({hidden},):
            sys.modules[name] = None          # as if the extension had never been built
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import tinytorch as tt
            from tinytorch.core import kernels
            import tinytorch.core.kernels     # importing again must not warn again
        messages = [str(w.message) for w in caught]
        print(len(messages), kernels.backend(), set(kernels.describe().values()))
        print(messages[0])
        x = tt.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        x.log_softmax().sum().backward()
        print(round(float(x.grad.data.sum()), 6))
    """)
    assert result.returncode == 0, result.stderr
    count_line, message, grad_sum = result.stdout.splitlines()
    assert count_line == "1 reference {'reference'}"
    assert "compiled kernels are not built" in message and 'pip install -e ".[dev]"' in message
    assert grad_sum == "0.0"   # d/dx of sum(log_softmax(x)) sums to zero: it ran, on the reference
