"""Drift detection with evidently's default rules, checked against scipy and on data whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinytorch.core.mlops import DriftDetector, ks_statistic, population_stability_index
from tinytorch.core.mlops.drift import TEST_THRESHOLDS, default_test
from tinytorch.core.mlops.image_features import image_statistics

scipy_stats = pytest.importorskip("scipy.stats", reason="drift statistics come from scipy (the stats extra)")

samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=60)


# Only the statistic is compared. scipy also computes a p-value, and warns when its exact method gives
# up on one and falls back to the asymptotic method; that leaves the statistic unchanged.
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@given(samples, samples)
def test_ks_statistic_equals_scipy(a, b):
    assert abs(ks_statistic(a, b) - scipy_stats.ks_2samp(a, b).statistic) <= 1e-12


def test_ks_statistic_with_ties_and_disjoint_samples():
    assert ks_statistic([1, 1, 2, 2], [1, 2, 2, 2]) == pytest.approx(0.25)
    assert ks_statistic([0, 1], [2, 3]) == 1.0 and ks_statistic([5.0], [5.0]) == 0.0


def evidently_psi(ref, cur, numeric_bins):
    """The formula written out for a known binning, to compare with."""
    r = np.histogram(ref, numeric_bins)[0] / len(ref)
    c = np.histogram(cur, numeric_bins)[0] / len(cur)
    r, c = np.where(r == 0, 1e-4, r), np.where(c == 0, 1e-4, c)
    return float(np.sum((r - c) * np.log(r / c)))


def test_psi_categorical_by_hand():
    ref = np.array([0] * 50 + [1] * 30 + [2] * 20)
    cur = np.array([0] * 20 + [1] * 30 + [2] * 50)
    expected = (0.5 - 0.2) * np.log(0.5 / 0.2) + 0 + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert population_stability_index(ref, cur, categorical=True) == pytest.approx(expected, rel=1e-12)
    # a class the reference never had gets a share of 0.0001, not infinity
    only_new = population_stability_index([0, 0, 1, 1], [0, 1, 2, 2], categorical=True)
    assert np.isfinite(only_new) and only_new == pytest.approx(
        (0.5 - 0.25) * np.log(2) * 2 + (1e-4 - 0.5) * np.log(1e-4 / 0.5))
    assert population_stability_index(ref, ref, categorical=True) == 0.0


def test_psi_numeric_uses_sturges_bins_of_both_samples():
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=700), rng.normal(0.3, 1.2, size=400)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    assert population_stability_index(ref, cur) == pytest.approx(evidently_psi(ref, cur, edges), rel=1e-12)
    # few distinct values: one bin per value even for numbers
    assert population_stability_index([1.0, 2.0, 2.0], [2.0, 2.0, 2.0]) == pytest.approx(
        population_stability_index([1, 2, 2], [2, 2, 2], categorical=True))


@pytest.mark.parametrize("rows, distinct, categorical, expected", [
    (1000, 50, False, "ks"), (1000, 5, False, "chisquare"), (1000, 2, False, "z"), (1000, 50, True, "chisquare"),
    (1000, 2, True, "z"), (1001, 50, False, "wasserstein"), (1001, 5, False, "jensenshannon"),
    (1001, 50, True, "jensenshannon"),
])
def test_the_default_test_follows_evidentlys_table(rows, distinct, categorical, expected):
    ref = np.arange(rows) % distinct
    assert default_test(ref.astype(float), ref.astype(float), categorical) == expected


def test_each_test_against_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=400), rng.normal(0.2, 1, size=300)
    report = DriftDetector(a[:, None]).detect(b[:, None])
    assert report.features[0].test == "ks" and report.features[0].score == scipy_stats.ks_2samp(a, b).pvalue
    big_a, big_b = rng.normal(size=3000), rng.normal(0.5, 1, size=2000)
    f = DriftDetector(big_a[:, None]).detect(big_b[:, None]).features[0]
    assert f.test == "wasserstein" and f.drifted
    assert f.score == pytest.approx(scipy_stats.wasserstein_distance(big_a, big_b) / np.std(big_a))
    cats_a, cats_b = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    f = DriftDetector({"c": cats_a}, categorical=["c"]).detect({"c": cats_b}).features[0]
    expected = scipy_stats.chisquare(np.bincount(cats_b, minlength=4), np.bincount(cats_a, minlength=4) * 1.0).pvalue
    assert f.test == "chisquare" and f.score == pytest.approx(expected)
    binary_a, binary_b = rng.integers(0, 2, 500), np.r_[np.zeros(300), np.ones(200)]
    f = DriftDetector({"b": binary_a}).detect({"b": binary_b}).features[0]
    p1, p2 = binary_a.mean(), binary_b.mean()
    pooled = (binary_a.sum() + binary_b.sum()) / 1000
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (2 / 500))
    assert f.test == "z" and f.score == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    js = DriftDetector({"c": rng.integers(0, 3, 2000)}, categorical=["c"]).detect({"c": np.zeros(100, int)}).features[0]
    assert js.test == "jensenshannon" and js.drifted and js.threshold == TEST_THRESHOLDS["jensenshannon"]


def test_no_shift_false_alarms_stay_at_the_tests_level():
    """A small version of the example's 1,000-split check: per-feature KS false alarms near 5 %."""
    rng = np.random.default_rng(2)
    population = rng.normal(size=(4000, 4)) * [1, 2, 0.5, 3] + rng.exponential(size=(4000, 4))
    alarms, dataset_alarms, trials = 0, 0, 200
    for _ in range(trials):
        order = rng.permutation(len(population))
        report = DriftDetector(population[order[:300]]).detect(population[order[300:600]])
        alarms += len(report.drifted_features)
        dataset_alarms += report.dataset_drifted
    rate = alarms / (trials * 4)
    assert 0.02 <= rate <= 0.085, rate  # 5 % in expectation; 800 tests give about +-1.5 % (1 sd 0.8 %)
    assert dataset_alarms / trials <= 0.05


def test_power_against_a_quarter_sigma_mean_shift():
    rng = np.random.default_rng(3)
    detected = sum(DriftDetector(rng.normal(size=(1000, 1))).detect(rng.normal(0.25, 1, size=(1000, 1))).dataset_drifted
                   for _ in range(40))
    assert detected >= 36  # scipy's KS at n = 1000 has about 99.7 % power here


def test_image_statistics_see_brightness_and_noise():
    rng = np.random.default_rng(4)
    base = rng.random((300, 3, 8, 8))
    names, ref = image_statistics(base[:150])
    detector = DriftDetector(ref, feature_names=names)
    assert not detector.detect(image_statistics(base[150:])[1]).dataset_drifted
    brighter = detector.detect(image_statistics(base[150:] + 0.2)[1])
    assert set(brighter.drifted_features) >= {"mean_c0", "mean_c1", "mean_c2"}
    noisy = detector.detect(image_statistics(base[150:] + rng.normal(0, 0.3, base[150:].shape))[1])
    assert "edge_strength" in noisy.drifted_features and noisy.dataset_drifted


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="feature 'x' holds NaN"):
        DriftDetector({"x": [1.0, np.nan]})
    with pytest.raises(ValueError, match=r"lacks features \['y'\]"):
        DriftDetector({"x": [1.0, 2.0], "y": [1, 2]}).detect({"x": [1.0]})
    with pytest.raises(ValueError, match="unknown features"):
        DriftDetector({"x": [1.0]}, categorical=["z"])
    with pytest.raises(ValueError, match="both samples need values"):
        ks_statistic([], [1.0])
