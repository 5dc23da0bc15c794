"""``tinytorch.mlops``: the MLOps names of lesson 15, re-exported from :mod:`tinytorch.core.mlops`."""

from .core.mlops import *  # noqa: F401,F403
from .core.mlops import __all__  # noqa: F401
