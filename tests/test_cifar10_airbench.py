"""The pieces of the fast CIFAR-10 recipe (examples/train_cifar10_airbench.py), and the program end to end on the fixtures."""

import importlib
import json
import sys
import warnings

import numpy as np
import pytest

import tinytorch as tt

from .test_examples import ROOT, fixture_data  # noqa: F401  (fixture)


@pytest.fixture
def recipe(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    yield importlib.import_module("train_cifar10_airbench")
    sys.modules.pop("train_cifar10_airbench", None)


def test_whitening_filters_decorrelate_the_patches(recipe):
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(3, 3))  # correlated channels, smooth in space
    images = np.einsum("ij,njhw->nihw", mixing, rng.normal(size=(200, 3, 12, 12)))
    images = images + np.roll(images, 1, axis=3)
    filters = recipe.whitening_filters(images, patch=2, eps=0.0)
    assert filters.shape == (24, 3, 2, 2) and filters.dtype == np.float32
    np.testing.assert_array_equal(filters[12:], -filters[:12])
    out = tt.Conv2D(3, 12, kernel_size=2, bias=False)
    out.weight.data[...] = filters[:12]
    responses = out(tt.tensor(images.astype(np.float32))).data.transpose(1, 0, 2, 3).reshape(12, -1)
    covariance = responses @ responses.T / responses.shape[1]
    np.testing.assert_allclose(covariance, np.eye(12), atol=2e-3)


def test_whitening_filters_from_chunks_equal_those_from_every_patch_at_once(recipe):
    images = np.random.default_rng(4).normal(size=(1100, 3, 4, 4)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    patches = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)
    patches = patches.reshape(-1, 12)
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    expected = (eigenvectors / np.sqrt(eigenvalues + 5e-4)).T[::-1].reshape(12, 3, 2, 2)
    filters = recipe.whitening_filters(images)  # 1,100 images: three chunks
    signs = np.sign((filters[:12] * expected).sum(axis=(1, 2, 3)))  # an eigenvector's sign is arbitrary
    np.testing.assert_allclose(filters[:12], expected * signs[:, None, None, None], rtol=1e-4, atol=1e-5)


def test_identity_initialised_convolutions_pass_their_input_through(recipe):
    conv = recipe.conv(4, 8)
    x = np.random.randn(2, 4, 6, 6).astype(np.float32)
    np.testing.assert_array_equal(conv(tt.tensor(x)).data[:, :4], x)
    assert np.abs(conv.weight.data[4:]).sum() > 0  # the other filters keep their random start


def test_alternating_flip_mirrors_every_second_epoch(recipe):
    flip = recipe.AlternatingFlip()
    batch = np.arange(2 * 3 * 2 * 4).reshape(2, 3, 2, 4)
    seen = []
    for epoch in (1, 2, 3):
        flip.on_epoch_begin(None, epoch)
        seen.append(flip(batch))
    np.testing.assert_array_equal(seen[0], batch)
    np.testing.assert_array_equal(seen[1], batch[..., ::-1])
    np.testing.assert_array_equal(seen[2], batch)


def test_prepared_images_are_padded_by_reflection_with_half_mirrored(recipe):
    images = np.random.default_rng(1).integers(0, 256, size=(400, 3, 5, 5), dtype=np.uint8)
    prepared = recipe.prepare_images(images, np.random.default_rng(2))
    assert prepared.shape == (400, 3, 9, 9) and prepared.dtype == np.uint8
    inner = prepared[:, :, 2:-2, 2:-2]
    mirrored = np.array([np.array_equal(a, b[..., ::-1]) and not np.array_equal(a, b) for a, b in zip(inner, images)])
    kept = np.array([np.array_equal(a, b) for a, b in zip(inner, images)])
    assert (mirrored | kept).all() and 150 < mirrored.sum() < 250
    np.testing.assert_array_equal(prepared[:, :, 0, 2:-2], inner[:, :, 2])  # reflect: row -2 is row 2


@pytest.mark.parametrize("epochs, trained", [(0, []), (2, [1, 2]), (3, [1, 2, 3])])
def test_the_whitening_bias_trains_for_its_epochs_only(recipe, epochs, trained):
    layer = tt.Conv2D(3, 24, kernel_size=2, bias=True)
    freeze = recipe.FreezeWhiteningBias(layer, epochs)
    seen = []
    for epoch in range(1, 6):
        freeze.on_epoch_begin(None, epoch)
        if layer.bias.requires_grad:
            seen.append(epoch)
    assert seen == trained


def test_lookahead_pulls_the_weights_to_their_running_average(recipe):
    layer = tt.Dense(2, 1)
    lookahead = recipe.Lookahead(layer, total_steps=10, start=1, every=5, base=0.5)

    class Progress:
        epoch = 0

    trainer = Progress()
    layer.weight.data[...] = 1.0
    lookahead.on_batch_end(trainer, 5, {})  # before the start epoch: nothing
    assert lookahead.average is None
    trainer.epoch = 1
    lookahead.on_batch_end(trainer, 5, {})  # the first average is the weights themselves
    layer.weight.data[...] = 3.0
    lookahead.on_batch_end(trainer, 6, {})  # not a multiple of 5: nothing
    np.testing.assert_array_equal(layer.weight.data, 3.0)
    lookahead.on_batch_end(trainer, 10, {})
    rho = 0.5 * (10 / 10) ** 3
    np.testing.assert_allclose(layer.weight.data, rho * 1.0 + (1 - rho) * 3.0)
    layer.weight.data[...] = 7.0
    lookahead.on_epoch_end(trainer, 2, {})  # back to the average at the epoch's end
    np.testing.assert_allclose(layer.weight.data, 2.0)


def test_test_time_augmentation_averages_the_views(recipe):
    class Column(tt.Module):  # the score of class 0 is the image's leftmost column, of class 1 its top row
        def forward(self, x):
            return tt.tensor(np.stack([x.data[:, 0, :, 0].sum(1), x.data[:, 0, 0, :].sum(1)], axis=1))

    images = np.random.default_rng(3).normal(size=(4, 1, 5, 5)).astype(np.float32)
    model = Column()
    left, right, top = images[:, 0, :, 0].sum(1), images[:, 0, :, -1].sum(1), images[:, 0, 0, :].sum(1)
    np.testing.assert_allclose(recipe.tta_logits(model, images, 0)[:, 0], left, rtol=1e-6)
    np.testing.assert_allclose(recipe.tta_logits(model, images, 1)[:, 0], (left + right) / 2, rtol=1e-6)
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    views = [padded[..., d:d + 5, d:d + 5] for d in (0, 2)]
    shifted = sum((v[:, 0, :, 0].sum(1) + v[:, 0, :, -1].sum(1)) / 2 for v in views) / 2
    np.testing.assert_allclose(recipe.tta_logits(model, images, 2, batch_size=3)[:, 0],
                               0.5 * (left + right) / 2 + 0.5 * shifted, rtol=1e-5)
    assert recipe.tta_logits(model, images, 1)[:, 1] == pytest.approx(top)  # the top row is its own mirror's sum


def test_batch_norm_shifts_get_the_scaled_rate_and_frozen_weights_none(recipe):
    model = recipe.build_model(width=4)
    model[0].weight.requires_grad = False
    others, shifts = recipe.param_groups(model, lr=0.5, weight_decay=0.01)
    norms = [m for m in model.modules() if isinstance(m, tt.BatchNorm2D)]
    assert {id(p) for p in shifts["params"]} == {id(m.bias) for m in norms}
    assert shifts["lr"] == 0.5 * recipe.BIAS_SCALER and shifts["weight_decay"] * shifts["lr"] == pytest.approx(0.01)
    assert others["weight_decay"] * others["lr"] == pytest.approx(0.01)
    frozen = {id(model[0].weight)} | {id(m.weight) for m in norms}
    assert not frozen & {id(p) for p in shifts["params"] + others["params"]}
    assert model(tt.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_the_program_trains_records_and_saves(recipe, fixture_data):  # noqa: F811
    out, saved = fixture_data / "results", fixture_data / "model.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures are trusted local copies: the data module warns so
        test = recipe.main(["--config=90", "--epochs=4", "--batch-size=2", "--width=4", f"--out={out}",
                            f"--save={saved}", "--quiet"])
    recorded = json.loads((out / "history.json").read_text())
    assert recorded["history"]["epoch"] == [1, 2, 3, 4] and recorded["test"]["tta_level"] == 2
    assert recorded["test"]["accuracy"] == test["accuracy"]
    assert sum(map(sum, recorded["confusion_matrix"])) == test["num_samples"]
    report = (out / "README.md").read_text()
    assert "90 % configuration" in report and "Test-time augmentation level 2" in report
    assert "Target: none (the 90 configuration with options changed or the data limited)" in report
    from tinytorch.core.checkpoint import load_checkpoint

    state = load_checkpoint(saved, recipe.build_model(width=4))
    assert state["extra"]["test_accuracy"] == test["accuracy"] and state["extra"]["width"] == 4


def test_configurations_and_their_verdicts(recipe):
    from docopt import docopt

    def parse(*argv):
        return recipe.settings(docopt(recipe.__doc__, argv=list(argv)))

    assert parse("--config=80") == (dict(recipe.CONFIGS["80"][0]), False)
    assert parse("--config=80", "--epochs=3") == (dict(recipe.CONFIGS["80"][0]), False)  # the same value
    config, changed = parse("--config=90", "--width=48")
    assert changed and config["width"] == 48 and config["epochs"] == recipe.CONFIGS["90"][0]["epochs"]
    with pytest.raises(SystemExit, match="unknown --config '95'"):
        parse("--config=95")
    with pytest.raises(SystemExit, match="--tta must be 0, 1 or 2, got 3"):
        parse("--tta=3")
    assert "**met** (80.50 % in 6.9 min)" in recipe.target_line("80", False, 0.805, 6.9)
    assert "**NOT met** (80.50 % in 7.1 min)" in recipe.target_line("80", False, 0.805, 7.1)  # too slow
    assert "**NOT met** (89.90 % in 25.0 min)" in recipe.target_line("90", False, 0.899, 25.0)
    assert "Target: none" in recipe.target_line("90", True, 0.95, 1.0)  # a changed run proves nothing
