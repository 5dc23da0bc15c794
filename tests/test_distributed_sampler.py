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


# -- DistributedSampler and shard_indices: each rank its part of every epoch ----------------------------
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tinytorch.distributed import DistributedSampler, shard_indices  # noqa: E402


@given(n=st.integers(0, 120), p=st.integers(1, 8), epoch=st.integers(0, 3), seed=st.integers(0, 2**31),
       shuffle=st.booleans())
def test_padded_shards_are_equal_and_cover_every_sample(n, p, epoch, seed, shuffle):
    shards = [shard_indices(n, r, p, epoch, seed, shuffle) for r in range(p)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    every = np.concatenate(shards)
    assert len(every) == -(-n // p) * p
    assert set(every.tolist()) == set(range(n))
    if n:
        counts = np.bincount(every, minlength=n)
        assert counts.max() <= 1 + -(-(len(every) - n) // n)  # the padding repeats the order from its start
        if n % p == 0:
            assert np.all(counts == 1)  # exactly once per epoch
    whole = shard_indices(n, 0, 1, epoch, seed, shuffle)  # one process's order ...
    for step in range(len(shards[0])):  # ... step by step, is what the p ranks see together
        assert sorted(s[step] for s in shards) == sorted(np.resize(whole, len(every))[step * p:(step + 1) * p])


@given(n=st.integers(0, 60), p=st.integers(1, 6), start=st.integers(0, 60), drop_last=st.booleans())
def test_unpadded_and_cut_shards_and_a_late_start(n, p, start, drop_last):
    start = min(start, n)
    rest = shard_indices(n, 0, 1, epoch=1, seed=7, start=0)[start:]
    shards = [shard_indices(n, r, p, epoch=1, seed=7, drop_last=drop_last, start=start, pad=False) for r in range(p)]
    every = np.concatenate(shards)
    if drop_last:
        assert len({len(s) for s in shards}) == 1 and sorted(every) == sorted(rest[: len(rest) - len(rest) % p])
    else:
        assert sorted(every) == sorted(rest) and max(map(len, shards)) - min(map(len, shards)) <= 1
    for r, shard in enumerate(shards):
        sampler = DistributedSampler(n, p, r, seed=7, drop_last=drop_last, pad=False)
        sampler.set_epoch(1, start=start)
        assert len(sampler) == len(shard) and list(sampler) == shard.tolist()


def test_the_order_depends_on_the_epoch_and_seed_only():
    a, b = DistributedSampler(50, 2, 1, seed=3), DistributedSampler(list(range(50)), 2, 1, seed=3)
    assert list(a) == list(b) and len(a) == 25
    a.set_epoch(1)
    assert list(a) != list(b)
    assert shard_indices(10, 1, 4, shuffle=False).tolist() == [1, 5, 9]
    assert repr(a).startswith("DistributedSampler(rank 1 of 2, 50 samples")


def test_a_sampler_feeds_a_data_loader_its_shard():
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    for rank in range(2):
        sampler = DistributedSampler(10, 2, rank, seed=0)
        loader = DataLoader(x, y, batch_size=2, sampler=sampler, drop_last=True)
        assert len(loader) == 2  # 5 samples, batches of 2, the last one dropped
        assert [v for _, labels in loader for v in labels.data.tolist()] == sampler.indices()[:4].tolist()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shard_indices(10, 4, 4), r"rank must be in \[0, 4\), got 4"),
        (lambda: shard_indices(10, 0, 0), "world_size must be a positive integer, got 0"),
        (lambda: shard_indices(-1, 0, 1), "num_samples must be an integer >= 0, got -1"),
        (lambda: DistributedSampler(10, 2, 0).set_epoch(0, start=11), r"start must be in \[0, 10\], got 11"),
        (lambda: DistributedSampler(10, 2, 0).set_epoch(-1), "epoch must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_name_the_call(call, message):
    with pytest.raises(ValueError, match=message):
        call()
