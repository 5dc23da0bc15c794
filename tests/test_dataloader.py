"""DataLoader: both call forms, shuffling, drop_last, collate, transforms, and the prefetch thread."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch
from tinytorch import Tensor
from tinytorch.core.dataloader import (
    PREFETCH_THREAD_NAME,
    DataLoader,
    Dataset,
    TensorDataset,
    batch_slices,
    default_collate,
)
from tinytorch.core.data.transforms import Compose, RandomCrop, RandomHorizontalFlip


def arrays(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 4, 4)), rng.integers(0, 10, size=n).astype(np.uint8)


def labels_of(loader):
    return [batch[1].tolist() for batch in loader]


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == PREFETCH_THREAD_NAME]


class Squares(Dataset):
    """A dataset with no arrays behind it: samples are computed one at a time."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], dtype=np.float64), "name": f"s{i}"}


def test_the_seed_course_form_takes_arrays_and_labels():
    x, y = arrays()
    loader = DataLoader(x, y, batch_size=4, shuffle=False)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    first_x, first_y = batches[0]
    assert isinstance(first_x, Tensor) and first_x.dtype == np.float32 and first_y.dtype == np.int64
    np.testing.assert_array_equal(first_x.data, x[:4].astype(np.float32))
    assert [b[1].tolist() for b in batches] == [y[:4].tolist(), y[4:8].tolist(), y[8:].tolist()]


def test_the_seed_course_form_takes_tensors():
    x, y = arrays()
    loader = DataLoader(Tensor(x), Tensor(y.astype(np.int64)), batch_size=32, shuffle=True)
    (bx, by), = list(loader)
    assert sorted(by.tolist()) == sorted(y.tolist()) and bx.shape == (10, 3, 4, 4)


def test_the_pytorch_form_takes_a_dataset():
    x, y = arrays()
    loader = DataLoader(TensorDataset(x, y), batch_size=3, drop_last=True)
    assert len(loader) == 3 and labels_of(loader) == [y[0:3].tolist(), y[3:6].tolist(), y[6:9].tolist()]


def test_a_bare_array_gives_plain_tensor_batches():
    batches = list(DataLoader(np.arange(5), batch_size=2))
    assert all(isinstance(b, Tensor) for b in batches) and [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_shuffle_with_a_seed_is_reproducible_and_new_each_epoch():
    x, y = arrays(50)
    a, b = DataLoader(x, y, batch_size=8, shuffle=True, seed=7), DataLoader(x, y, batch_size=8, shuffle=True, seed=7)
    epoch1 = labels_of(a)
    assert epoch1 == labels_of(b)
    assert labels_of(a) != epoch1  # the next epoch is another order
    order = np.random.default_rng(7).permutation(50)
    assert sum(epoch1, []) == y[order].tolist()


def test_shuffle_without_a_seed_follows_manual_seed():
    x, y = arrays(40)
    loader = DataLoader(x, y, batch_size=8, shuffle=True)
    tinytorch.manual_seed(3)
    first = labels_of(loader)
    tinytorch.manual_seed(3)
    assert labels_of(loader) == first
    assert sorted(sum(first, [])) == sorted(y.tolist())


@settings(max_examples=40)
@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans())
def test_len_and_batch_sizes(n, batch_size, drop_last):
    loader = DataLoader(np.arange(n), batch_size=batch_size, drop_last=drop_last)
    sizes = [len(b) for b in loader]
    expected = n // batch_size if drop_last else -(-n // batch_size)
    assert len(loader) == len(sizes) == expected
    assert all(s == batch_size for s in sizes[:-1]) and sum(sizes) == (expected * batch_size if drop_last else n)


def test_batch_slices_cover_the_epoch():
    assert batch_slices(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert batch_slices(7, 3, drop_last=True) == [slice(0, 3), slice(3, 6)]
    assert batch_slices(0, 3) == [] and batch_slices(2, 5, drop_last=True) == []
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        batch_slices(4, 0)


def test_array_datasets_are_gathered_without_reading_samples_one_by_one():
    class NoSampleReads(TensorDataset):
        def __getitem__(self, index):
            raise AssertionError("a sample was read on its own")

    x, y = arrays(20)
    batches = list(DataLoader(NoSampleReads(x, y), batch_size=8, shuffle=True, seed=0))
    order = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(np.concatenate([b[0].data for b in batches]), x[order].astype(np.float32))


def test_generic_datasets_use_default_collate():
    batches = list(DataLoader(Squares(5), batch_size=2))
    assert batches[0]["x"].tolist() == [[0.0, 0.0], [1.0, 1.0]] and batches[0]["x"].dtype == np.float32
    assert batches[2]["name"] == ["s4"]


def test_a_custom_collate_fn_gets_the_list_of_samples():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return sum(int(s[1].item()) for s in samples)

    x, y = arrays(7)
    totals = list(DataLoader(x, y, batch_size=3, collate_fn=collate))
    assert seen == [3, 3, 1] and totals == [int(y[0:3].sum()), int(y[3:6].sum()), int(y[6:].sum())]


def test_default_collate_stacks_fields():
    x, y = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
    assert x.tolist() == [[0.0, 0.0], [1.0, 1.0]] and y.tolist() == [1, 0] and y.dtype == np.int64
    assert default_collate([Tensor([1.0]), Tensor([2.0])]).tolist() == [[1.0], [2.0]]
    with pytest.raises(TypeError, match="cannot batch samples of type object"):
        default_collate([object()])
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1,)])


def test_transform_applies_to_inputs_per_batch_reproducibly():
    x, y = arrays(12)
    calls = []

    def double(batch):
        calls.append(batch.shape)
        return batch * 2

    batches = list(DataLoader(x, y, batch_size=5, transform=double))
    assert calls == [(5, 3, 4, 4), (5, 3, 4, 4), (2, 3, 4, 4)]
    np.testing.assert_allclose(batches[0][0].data, 2 * x[:5], rtol=1e-6)
    assert batches[0][1].tolist() == y[:5].tolist()
    augment = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])
    first = [b[0].data for b in DataLoader(x, y, batch_size=5, transform=augment, seed=1)]
    again = [b[0].data for b in DataLoader(x, y, batch_size=5, transform=augment, seed=1)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b.astype(np.float32)) for a, b in zip(first, np.split(x, [5, 10])))


def _epochs(prefetch, seed=None):
    x, y = arrays(37)
    loader = DataLoader(x, y, batch_size=5, shuffle=True, seed=seed, prefetch=prefetch,
                        transform=Compose([RandomCrop(4, padding=2), RandomHorizontalFlip()]))
    tinytorch.manual_seed(11)
    out = []
    for _ in range(2):
        for bx, by in loader:
            tinytorch.core.random.generator().random()  # the main thread draws meanwhile (e.g. dropout)
            out.append((bx.data.copy(), by.data.copy()))
    return out


@pytest.mark.parametrize("seed", [None, 4])
def test_prefetch_yields_the_same_batches_in_the_same_order(seed):
    plain, prefetched = _epochs(False, seed), _epochs(True, seed)
    assert len(plain) == len(prefetched) == 16
    for (px, py), (qx, qy) in zip(plain, prefetched):
        np.testing.assert_array_equal(px, qx)
        np.testing.assert_array_equal(py, qy)
    assert not prefetch_threads()


def test_breaking_out_early_stops_the_prefetch_thread():
    loader = DataLoader(*arrays(100), batch_size=2, num_prefetch=3)
    for i, _ in enumerate(loader):
        assert len(prefetch_threads()) == 1
        if i == 2:
            break
    assert not prefetch_threads()
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    assert not prefetch_threads()


def test_an_error_in_the_prefetch_thread_reaches_the_caller():
    class Broken(Squares):
        def __getitem__(self, i):
            if i == 3:
                raise KeyError("sample 3 is broken")
            return super().__getitem__(i)

    with pytest.raises(KeyError, match="sample 3 is broken"):
        list(DataLoader(Broken(6), batch_size=2, prefetch=True))
    assert not prefetch_threads()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dataset": 5}, TypeError, "DataLoader needs a dataset .* got int"),
        ({"dataset": np.zeros(3), "batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"dataset": np.zeros(3), "num_prefetch": -1}, ValueError, "num_prefetch must be an integer >= 0, got -1"),
        ({"dataset": np.zeros(3), "labels": np.zeros(4)}, ValueError, r"same length .* lengths \[3, 4\]"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(**kwargs)


def test_tensor_dataset_samples_and_errors():
    x, y = arrays(4)
    sx, sy = TensorDataset(x, y)[2]
    assert sx.shape == (3, 4, 4) and sy.item() == y[2] and sy.dtype == np.int64
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="first \\(sample\\) dimension"):
        TensorDataset(np.float64(3.0))


@pytest.mark.parametrize(
    "module",
    ["tinytorch.core.dataloader", "tinytorch.core.data.dataset", "tinytorch.core.data.formats",
     "tinytorch.core.data.transforms"],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
