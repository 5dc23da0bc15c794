"""Data for lesson 08: datasets, batch transforms, and the registry, files and formats of the real data sets.

The lesson's module, :mod:`tinytorch.core.dataloader`, holds the DataLoader and re-exports the
public names of this package.
"""
