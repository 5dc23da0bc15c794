"""Kernel implementations: ``reference`` (plain NumPy, the specification) and the compiled modules.

Nothing outside ``tinytorch.core.kernels`` imports from here; ask the registry for a kernel instead.
"""
