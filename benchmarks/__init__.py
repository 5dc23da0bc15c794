"""TinyTorch's benchmarks: programs (not tests) that time the framework against its references and PyTorch.

Run one as a module from the repository root, e.g. ``python -m benchmarks.kernels``; the shared
machinery (idle-machine check, thread pinning, timing, results files) is in ``benchmarks.harness``.
"""
