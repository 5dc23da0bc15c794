"""A/B routing by request id and the paired accuracy comparison."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core.mlops import paired_accuracy_comparison, route_request

stats = pytest.importorskip("scipy.stats", reason="McNemar's test comes from scipy (the stats extra)")


def test_routing_is_deterministic_and_splits_as_asked():
    ids = [f"req-{i}" for i in range(10_000)]
    arms = np.array([route_request(i) for i in ids])
    assert abs(arms.mean() - 0.5) <= 0.02
    assert [route_request(i) for i in ids[:100]] == arms[:100].tolist()  # the same id, the same arm
    skewed = np.array([route_request(i, weights=(0.8, 0.2)) for i in ids])
    assert abs(skewed.mean() - 0.2) <= 0.02
    three = np.bincount([route_request(i, weights=(1, 1, 2)) for i in ids], minlength=3) / len(ids)
    assert np.allclose(three, [0.25, 0.25, 0.5], atol=0.02)
    salted = np.array([route_request(i, salt="experiment-2") for i in ids])
    assert 0.4 < (salted == arms).mean() < 0.6  # a new salt reshuffles, independently
    assert route_request("x", weights=(0, 1)) == 1 and route_request("x", weights=(1, 0)) == 0
    with pytest.raises(ValueError, match="non-negative"):
        route_request("x", weights=(-1, 2))


def test_route_request_hash_rule():
    import hashlib

    digest = hashlib.sha256(b"salt:user-7").digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    assert route_request("user-7", weights=(0.3, 0.7), salt="salt") == (0 if u < 0.3 else 1)


def test_paired_comparison_matches_the_formulas():
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.80
    b = np.where(rng.random(2000) < 0.1, ~a, a) | (rng.random(2000) < 0.05)
    result = paired_accuracy_comparison(a, b)
    n01, n10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    d = (n01 - n10) / 2000
    se = np.sqrt(n01 + n10 - (n01 - n10) ** 2 / 2000) / 2000
    assert result.difference == pytest.approx(d) and result.accuracy_b - result.accuracy_a == pytest.approx(d)
    assert result.ci == pytest.approx((d - 1.959963985 * se, d + 1.959963985 * se))
    assert result.p_value == pytest.approx(stats.binomtest(n01, n01 + n10, 0.5).pvalue)
    boot = paired_accuracy_comparison(a, b, method="bootstrap", resamples=2000)
    assert boot.ci == pytest.approx(result.ci, abs=0.006)
    same = paired_accuracy_comparison(a, a)
    assert same.difference == 0 and same.p_value == 1.0 and not same.significant


def test_paired_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(300):
        a = rng.random(500) < 0.7
        b = np.where(rng.random(500) < 0.2, rng.random(500) < 0.75, a)  # true difference: 0.2 * (0.75 - 0.7)
        lo, hi = paired_accuracy_comparison(a, b).ci
        covered += lo <= 0.01 <= hi
    assert 0.90 <= covered / 300 <= 0.99


def test_bad_input():
    with pytest.raises(ValueError, match="equally long"):
        paired_accuracy_comparison([True], [True, False])
    with pytest.raises(ValueError, match="method"):
        paired_accuracy_comparison([True], [True], method="t-test")
