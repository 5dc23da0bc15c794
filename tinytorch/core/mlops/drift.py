"""Data drift: has the data a model sees in production moved away from the data it was checked on?

:class:`DriftDetector` compares each feature (column) of a current batch with the same feature of
a reference set, with the test evidently (the most used open-source drift library) picks by
default, and flags the data set when at least half its features drifted:

============================  ==========================================  ===================
reference rows                numerical, more than 5 distinct values      categorical (or <= 5 distinct values)
============================  ==========================================  ===================
1000 or fewer                 two-sample Kolmogorov-Smirnov, p <= 0.05    chi-squared, p < 0.05 (two values: Z-test for proportions, p < 0.05)
more than 1000                Wasserstein distance / std(reference) >= 0.1  Jensen-Shannon distance >= 0.1
============================  ==========================================  ===================

Above 1000 rows a p-value flags even a harmless shift (with enough rows every difference is
"significant"), so the rules switch to distances with a fixed threshold. The statistics come
from ``scipy.stats`` (the ``stats`` extra). The population stability index
(:func:`population_stability_index`, 0.1 moderate, 0.25 significant) is what the monitor uses on
predicted classes.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> detector = DriftDetector(rng.normal(size=(500, 3)), feature_names=["a", "b", "c"])
>>> detector.detect(rng.normal(size=(500, 3))).dataset_drifted
False
>>> shifted = rng.normal(size=(500, 3)) + [1.0, 1.0, 0.0]
>>> report = detector.detect(shifted)
>>> report.dataset_drifted, [f.name for f in report.features if f.drifted]
(True, ['a', 'b'])
>>> report.features[0].test
'ks'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..exercises import exercise
from .extras import require

__all__ = ["DriftDetector", "DriftReport", "FeatureDrift", "ks_statistic", "population_stability_index",
           "default_test", "TEST_THRESHOLDS", "PSI_MODERATE", "PSI_SIGNIFICANT"]

#: evidently's default threshold of each test: a p-value below it (tests), or a distance at or above it
TEST_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}
P_VALUE_TESTS = ("ks", "chisquare", "z")
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
SMALL_REFERENCE = 1000  # up to this many reference rows, statistical tests; above, distances
FEW_VALUES = 5  # a numerical feature with at most this many distinct values is treated as categorical


@exercise
def ks_statistic(reference: Any, current: Any) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs.

    Parameters
    ----------
    reference, current : array_like
        1-D samples of numbers (any lengths, at least one value each).

    Returns
    -------
    float
        ``max over x of |F_ref(x) - F_cur(x)|``, where ``F(x)`` is the fraction of the sample that
        is ``<= x``. The maximum is reached at one of the sample values, so evaluating both CDFs at
        every value of the pooled sample suffices. 0 for identical samples, 1 for samples that do
        not overlap. Equals ``scipy.stats.ks_2samp(reference, current).statistic``.
    """
    a = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    b = np.sort(np.asarray(current, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError(f"ks_statistic: both samples need values, got {a.size} and {b.size}")
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _shares(reference: np.ndarray, current: np.ndarray, categorical: bool, fill_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """The fraction of each sample in each bin, binned as evidently does for PSI and Jensen-Shannon.

    A numerical feature with more than 20 distinct reference values gets Sturges' histogram bins
    over both samples together; anything else gets one bin per distinct value of either sample.
    With ``fill_zeros`` an empty bin gets 0.0001 (or a millionth of the smallest share, when that
    is below 0.0001), so that the logarithms of PSI stay finite.
    """
    if not categorical and np.unique(reference).size > 20:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        ref = np.histogram(reference, edges)[0] / reference.size
        cur = np.histogram(current, edges)[0] / current.size
    else:
        keys, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
        ref = np.bincount(inverse[: reference.size], minlength=keys.size) / reference.size
        cur = np.bincount(inverse[reference.size:], minlength=keys.size) / current.size
    if fill_zeros:
        ref, cur = _fill_empty(ref), _fill_empty(cur)
    return ref, cur


def _fill_empty(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares > 0].min()
    return np.where(shares == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, shares)


@exercise
def population_stability_index(reference: Any, current: Any, categorical: bool = False) -> float:
    """The population stability index of ``current`` against ``reference``: ``sum((r - c) * ln(r / c))``.

    Parameters
    ----------
    reference, current : array_like
        1-D samples: numbers, or category labels (e.g. predicted classes).
    categorical : bool
        Treat every distinct value as its own bin.

    Returns
    -------
    float
        Over bins, with ``r`` and ``c`` the fraction of each sample falling in the bin. The bins are
        evidently's: a numerical sample with more than 20 distinct reference values is cut into
        Sturges' bins of the two samples together (``np.histogram_bin_edges(np.concatenate([reference,
        current]), bins="sturges")``); otherwise (and always when ``categorical``) each distinct
        value of either sample is a bin. An empty bin's fraction becomes 0.0001, or the smallest
        non-zero fraction of that sample divided by a million if that is 0.0001 or less, so the
        logarithm stays finite. Below 0.1: no real change; 0.1 to 0.25: moderate; above 0.25: act.
    """
    ref, cur = np.asarray(reference).ravel(), np.asarray(current).ravel()
    if ref.size == 0 or cur.size == 0:
        raise ValueError(f"population_stability_index: both samples need values, got {ref.size} and {cur.size}")
    r, c = _shares(ref, cur, categorical, fill_zeros=True)
    return float(np.sum((r - c) * np.log(r / c)))


def default_test(reference: np.ndarray, current: np.ndarray, categorical: bool) -> str:
    """evidently's choice of test for one feature, from the reference size and the distinct values of both samples."""
    distinct = np.unique(np.concatenate([reference, current])).size
    if reference.size <= SMALL_REFERENCE:
        if categorical or distinct <= FEW_VALUES:
            return "chisquare" if distinct > 2 else "z"
        return "ks"
    if categorical or distinct <= FEW_VALUES:
        return "jensenshannon"
    return "wasserstein"


def _run_test(test: str, reference: np.ndarray, current: np.ndarray, categorical: bool) -> float:
    """The p-value or distance of ``test`` (see :data:`TEST_THRESHOLDS`)."""
    stats = require("scipy.stats", "DriftDetector")
    if test == "ks":
        return float(stats.ks_2samp(reference, current).pvalue)
    if test == "wasserstein":
        return float(stats.wasserstein_distance(reference, current) / max(np.std(reference), 0.001))
    if test == "jensenshannon":
        distance = require("scipy.spatial.distance", "DriftDetector")
        return float(distance.jensenshannon(*_shares(reference, current, categorical, fill_zeros=False)))
    if test == "psi":
        return population_stability_index(reference, current, categorical)
    keys, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
    ref_counts = np.bincount(inverse[: reference.size], minlength=keys.size)
    cur_counts = np.bincount(inverse[reference.size:], minlength=keys.size)
    if test == "chisquare":
        expected = ref_counts * (current.size / reference.size)
        with np.errstate(divide="ignore", invalid="ignore"):  # a value the reference never had: p = 0
            return float(stats.chisquare(cur_counts, expected).pvalue)
    if test == "z":
        if keys.size == 1:
            return 1.0
        p1, p2 = ref_counts[1] / reference.size, cur_counts[1] / current.size
        pooled = (ref_counts[1] + cur_counts[1]) / (reference.size + current.size)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / reference.size + 1 / current.size))
        return float(2 * stats.norm.sf(abs(z)))
    raise ValueError(f"DriftDetector: unknown test {test!r}; known: {', '.join(TEST_THRESHOLDS)}")


def is_drift(test: str, score: float, threshold: float) -> bool:
    """Whether ``score`` means drift: a p-value below the threshold (KS: at or below), or a distance at or above it."""
    if test == "ks":
        return score <= threshold
    if test in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature: the test used, its p-value or distance, the threshold, and whether it drifted."""

    name: str
    test: str
    score: float
    threshold: float
    drifted: bool

    @property
    def score_kind(self) -> str:
        return "p-value" if self.test in P_VALUE_TESTS else "distance"


@dataclass(frozen=True)
class DriftReport:
    """Per-feature verdicts and the data set's: drifted when at least ``drift_share`` of the features did."""

    features: tuple[FeatureDrift, ...]
    drift_share: float
    reference_rows: int
    current_rows: int

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features)

    @property
    def dataset_drifted(self) -> bool:
        return self.share_drifted >= self.drift_share

    def to_json(self) -> dict:
        return {"dataset_drifted": self.dataset_drifted, "share_drifted": self.share_drifted,
                "drift_share": self.drift_share, "reference_rows": self.reference_rows,
                "current_rows": self.current_rows, "features": [asdict(f) for f in self.features]}

    def __str__(self) -> str:
        lines = [f"{len(self.drifted_features)} of {len(self.features)} features drifted "
                 f"({'data set DRIFTED' if self.dataset_drifted else 'no data-set drift'}, threshold share {self.drift_share})"]
        lines += [f"  {f.name}: {f.test} {f.score_kind} {f.score:.4g} (threshold {f.threshold:g})"
                  f"{'  DRIFT' if f.drifted else ''}" for f in self.features]
        return "\n".join(lines)


def _columns(data: Any, names: Sequence[str] | None, owner: str) -> dict[str, np.ndarray]:
    """A table (2-D array, or a mapping of names to 1-D arrays) as named 1-D columns."""
    if isinstance(data, Mapping):
        columns = {str(k): np.asarray(v).ravel() for k, v in data.items()}
    else:
        array = np.asarray(data)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(f"{owner}: expected a table of shape (rows, features), got shape {array.shape}")
        names = list(names) if names is not None else [f"feature_{i}" for i in range(array.shape[1])]
        if len(names) != array.shape[1]:
            raise ValueError(f"{owner}: {len(names)} feature names for {array.shape[1]} columns")
        columns = {name: array[:, i] for i, name in enumerate(names)}
    for name, column in columns.items():
        if column.size == 0:
            raise ValueError(f"{owner}: feature {name!r} has no rows")
        if column.dtype.kind == "f" and not np.isfinite(column).all():
            raise ValueError(f"{owner}: feature {name!r} holds NaN or infinite values")
    return columns


class DriftDetector:
    """Compares current data with a reference, feature by feature, using evidently's default tests.

    Parameters
    ----------
    reference : 2-D array (rows, features) or mapping of name -> 1-D array
        The data the model is known to work on (e.g. held-out data at training time).
    feature_names : sequence of str, optional
        Names of the columns of a 2-D reference (default ``feature_0``, ...).
    categorical : sequence of str
        Features whose values are categories (e.g. a predicted class), not quantities.
    drift_share : float
        The data set drifts when at least this share of its features drift (evidently: 0.5).
    tests : mapping of feature name -> test, optional
        Force a test (``"ks"``, ``"chisquare"``, ``"z"``, ``"wasserstein"``, ``"jensenshannon"``,
        ``"psi"``) instead of the default choice.
    thresholds : mapping of test -> threshold, optional
        Override :data:`TEST_THRESHOLDS`.
    """

    def __init__(self, reference: Any, feature_names: Sequence[str] | None = None, categorical: Sequence[str] = (),
                 drift_share: float = 0.5, tests: Mapping[str, str] | None = None,
                 thresholds: Mapping[str, float] | None = None):
        self.reference = _columns(reference, feature_names, "DriftDetector")
        self.feature_names = list(self.reference)
        unknown = (set(categorical) | set(tests or {})) - set(self.feature_names)
        if unknown:
            raise ValueError(f"DriftDetector: unknown features {sorted(unknown)}; the features are {self.feature_names}")
        if not 0 < drift_share <= 1:
            raise ValueError(f"DriftDetector: drift_share must be in (0, 1], got {drift_share}")
        self.categorical = set(categorical)
        self.drift_share = float(drift_share)
        self.tests = dict(tests or {})
        self.thresholds = {**TEST_THRESHOLDS, **(thresholds or {})}

    def detect(self, current: Any) -> DriftReport:
        """Test every feature of ``current`` (same layout as the reference) against the reference."""
        columns = _columns(current, self.feature_names if not isinstance(current, Mapping) else None, "DriftDetector.detect")
        missing = [n for n in self.feature_names if n not in columns]
        if missing:
            raise ValueError(f"DriftDetector.detect: the current data lacks features {missing}")
        verdicts = []
        for name in self.feature_names:
            ref, cur = self.reference[name], columns[name]
            categorical = name in self.categorical
            test = self.tests.get(name) or default_test(ref, cur, categorical)
            score = _run_test(test, ref, cur, categorical)
            threshold = self.thresholds[test]
            verdicts.append(FeatureDrift(name, test, score, threshold, is_drift(test, score, threshold)))
        rows = len(next(iter(self.reference.values())))
        return DriftReport(tuple(verdicts), self.drift_share, rows, len(next(iter(columns.values()))))
