"""A DataLoader reads the indices a sampler gives, in its order (DistributedSampler: each rank its shard)."""

import numpy as np
import pytest

from tinytorch.core.dataloader import DataLoader


def test_a_loader_reads_the_samplers_indices_in_order():
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    loader = DataLoader(x, y, batch_size=3, sampler=[7, 2, 9, 0, 4])
    assert len(loader) == 2
    assert [labels.tolist() for _, labels in loader] == [[7, 2, 9], [0, 4]]
    assert loader.sampler == [7, 2, 9, 0, 4]


def test_a_sampler_and_shuffle_exclude_each_other():
    with pytest.raises(ValueError, match="shuffle must be False"):
        DataLoader(np.zeros((4, 1)), np.zeros(4), sampler=[0, 1], shuffle=True)
    with pytest.raises(TypeError, match="iterable of indices with a length, got int"):
        DataLoader(np.zeros((4, 1)), np.zeros(4), sampler=3)
