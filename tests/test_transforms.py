"""Batch transforms against direct per-image NumPy computations, with the same seeds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch
from tinytorch import Tensor
from tinytorch.core.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToFloat,
    crop_batch,
    flip_batch,
)


def images(n=4, c=3, h=6, w=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def crop_loop(batch, top, left, height, width):
    return np.stack([img[:, t : t + height, l : l + width] for img, t, l in zip(batch, top, left)])


@settings(max_examples=40)
@given(
    n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
    data=st.data(),
)
def test_crop_batch_matches_a_per_image_slice(n, c, h, w, data):
    height, width = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    top = np.array(data.draw(st.lists(st.integers(0, h - height), min_size=n, max_size=n)))
    left = np.array(data.draw(st.lists(st.integers(0, w - width), min_size=n, max_size=n)))
    batch = images(n, c, h, w)
    out = crop_batch(batch, top, left, (height, width))
    np.testing.assert_array_equal(out, crop_loop(batch, top, left, height, width))
    assert out.dtype == batch.dtype


def test_crop_batch_on_a_non_contiguous_batch():
    batch = images(4, 3, 8, 8).transpose(0, 1, 3, 2)[::2]
    top, left = np.array([0, 3]), np.array([2, 1])
    np.testing.assert_array_equal(crop_batch(batch, top, left, 5), crop_loop(batch, top, left, 5, 5))


@pytest.mark.parametrize(
    "top, left, size, match",
    [([0, 3], [0, 0], 4, r"does not fit in 6x5"), ([0, 0], [0, -1], 2, "does not fit"), ([0], [0], 2, r"shape \(2,\)")],
)
def test_crop_batch_rejects_windows_that_do_not_fit(top, left, size, match):
    with pytest.raises(ValueError, match=match):
        crop_batch(images(2), np.array(top), np.array(left), size)


def test_crop_batch_needs_nchw():
    with pytest.raises(ValueError, match=r"crop_batch expects a batch of images \(N, C, H, W\), got shape \(3, 4\)"):
        crop_batch(np.zeros((3, 4)), np.zeros(3, int), np.zeros(3, int), 1)


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_random_crop_matches_padding_then_slicing_with_the_same_draws(padding):
    batch = images(6, 3, 8, 8)
    out = RandomCrop(7, padding=padding, seed=11)(batch)
    rng = np.random.default_rng(11)
    span = 8 + 2 * padding - 7 + 1
    top, left = rng.integers(0, span, size=6), rng.integers(0, span, size=6)
    padded = np.pad(batch, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    np.testing.assert_array_equal(out, crop_loop(padded, top, left, 7, 7))


def test_random_crop_32_padding_4_shifts_by_at_most_4():
    batch = images(64, 1, 32, 32)
    out = RandomCrop(32, padding=4, seed=0)(batch)
    padded = np.pad(batch, ((0, 0), (0, 0), (4, 4), (4, 4)))
    shifts = [(dy, dx) for dy in range(9) for dx in range(9)]
    found = [
        next(s for s in shifts if np.array_equal(out[i], padded[i, :, s[0] : s[0] + 32, s[1] : s[1] + 32]))
        for i in range(64)
    ]
    assert len(set(found)) > 20  # the offsets vary from image to image


def test_random_transforms_draw_from_the_framework_generator_without_a_seed():
    batch = images(8, 3, 6, 6)
    transform = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])
    tinytorch.manual_seed(5)
    first = transform(batch)
    tinytorch.manual_seed(5)
    np.testing.assert_array_equal(transform(batch), first)
    assert not np.array_equal(transform(batch), first)


def test_an_own_seed_wins_over_the_generator_passed_in():
    batch = images(8, 3, 6, 6)
    a = RandomCrop(4, seed=3)(batch, np.random.default_rng(1))
    b = RandomCrop(4, seed=3)(batch, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    c = RandomCrop(4)(batch, np.random.default_rng(1))
    d = RandomCrop(4)(batch, np.random.default_rng(1))
    np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_random_horizontal_flip_matches_a_coin_per_image(p):
    batch = images(16, 2, 3, 5)
    out = RandomHorizontalFlip(p, seed=4)(batch)
    flip = np.random.default_rng(4).random(16) < p
    expected = np.stack([img[..., ::-1] if f else img for img, f in zip(batch, flip)])
    np.testing.assert_array_equal(out, expected)


def test_flip_batch_mirrors_the_last_axis_only_where_asked():
    batch = np.arange(12).reshape(2, 1, 2, 3)
    out = flip_batch(batch, np.array([True, False]))
    assert out[0, 0].tolist() == [[2, 1, 0], [5, 4, 3]] and out[1, 0].tolist() == [[6, 7, 8], [9, 10, 11]]
    with pytest.raises(ValueError, match=r"flip of shape \(3,\)"):
        flip_batch(batch, np.array([True, False, True]))


def test_normalize_standardises_each_channel():
    batch = images(5, 3, 4, 4)
    mean, std = [0.1, -0.2, 0.3], [0.5, 2.0, 1.5]
    out = Normalize(mean, std)(batch)
    expected = np.stack([(batch[:, c] - mean[c]) / std[c] for c in range(3)], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(Normalize(0.5, 0.25)(batch), (batch - 0.5) / 0.25, rtol=1e-6)


def test_normalize_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"Normalize with 3 means and 3 stds got a batch of shape \(2, 3072\)"):
        Normalize([0, 0, 0], [1, 1, 1])(np.zeros((2, 3072), np.float32))
    with pytest.raises(ValueError, match="std must not be zero"):
        Normalize(0.0, [1.0, 0.0])(np.zeros((2, 2), np.float32))


def test_compose_applies_in_order_sharing_the_generator():
    batch = images(6, 3, 8, 8)
    crop, flip = RandomCrop(6, padding=2), RandomHorizontalFlip()
    out = Compose([crop, flip, Normalize(0.5, 2.0)])(batch, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    expected = (flip(crop(batch, rng), rng) - 0.5) / 2.0
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_compose_accepts_plain_callables():
    assert Compose([lambda x: x * 2, Normalize(1.0, 1.0)])(np.ones((1, 1), np.float32)).tolist() == [[1.0]]


def test_transforms_return_a_tensor_for_a_tensor():
    out = Normalize(1.0, 2.0)(Tensor(np.full((2, 1, 2, 2), 3.0)))
    assert isinstance(out, Tensor) and out.dtype == np.float32 and np.all(out.data == 1.0)


def test_to_float_scales_uint8_to_unit_range():
    out = ToFloat()(np.array([[0, 51, 255]], dtype=np.uint8))
    assert out.dtype == np.float32 and np.allclose(out, [[0.0, 0.2, 1.0]])
    with pytest.raises(ValueError, match="ToFloat expects uint8 pixels, got dtype float32"):
        ToFloat()(np.zeros((1, 1), np.float32))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RandomCrop(0), "positive size"),
        (lambda: RandomCrop(4, padding=-1), "padding >= 0, got size=4, padding=-1"),
        (lambda: RandomHorizontalFlip(1.5), r"p must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_random_crop_larger_than_the_padded_image_is_refused():
    with pytest.raises(ValueError, match=r"RandomCrop\(9, 9\) does not fit in 6x5 images padded by 1"):
        RandomCrop(9, padding=1)(images())
