"""The four MLPerf inference scenarios and the settings of one run (LoadGen's ``TestSettings``).

=============  ======================================  ===============  ===========================
scenario       how queries arrive                      samples / query  what is reported
=============  ======================================  ===============  ===========================
SingleStream   the next one as soon as the last is     1                90th-percentile latency
               answered (one user, one phone)
MultiStream    the same closed loop                    8                99th-percentile latency of
                                                                        a query (its slowest sample)
Server         at random (Poisson) times, at a set     1                the highest rate whose 99th
               rate, whatever the system is doing                       percentile stays in a bound
Offline        all at once                             all              samples per second
=============  ======================================  ===============  ===========================

Defaults follow LoadGen's code (``loadgen/test_settings.h``): a run lasts at least 10 s *and*
100 queries; MultiStream needs 662 queries (its p99 early-stopping minimum, a rule of MLPerf);
Server 459 (below that its p99 early stopping cannot pass); Offline sends 24,576 samples. Official submissions run 600 s; lessons and tests shorten the
minimums, and the result then says it is not valid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class BenchmarkScenario(Enum):
    """The MLPerf inference scenarios, under the original course's member names."""

    SINGLE_STREAM = "SingleStream"
    MULTI_STREAM = "MultiStream"
    SERVER = "Server"
    OFFLINE = "Offline"

    @classmethod
    def parse(cls, value: Any) -> BenchmarkScenario:
        """A scenario from itself, its value (``"SingleStream"``) or its name in any case (``"single_stream"``)."""
        if isinstance(value, cls):
            return value
        text = str(value).replace("-", "_").lower()
        for scenario in cls:
            if text in (scenario.value.lower(), scenario.name.lower(), scenario.name.lower().replace("_", "")):
                return scenario
        raise ValueError(f"unknown scenario {value!r}; expected one of {', '.join(s.value for s in cls)}")


MULTI_STREAM_MIN_QUERIES = 662  # MLPerf: enough queries for a p99 early-stopping estimate
DEFAULT_PERCENTILE = {
    BenchmarkScenario.SINGLE_STREAM: 0.90,
    BenchmarkScenario.MULTI_STREAM: 0.99,
    BenchmarkScenario.SERVER: 0.99,
    BenchmarkScenario.OFFLINE: 0.90,
}
# LoadGen's code default is 100 queries; the Server scenario's p99 early stopping cannot pass below 459.
SERVER_MIN_QUERIES = 459
DEFAULT_MIN_QUERIES = {
    BenchmarkScenario.SINGLE_STREAM: 100,
    BenchmarkScenario.MULTI_STREAM: MULTI_STREAM_MIN_QUERIES,
    BenchmarkScenario.SERVER: SERVER_MIN_QUERIES,
    BenchmarkScenario.OFFLINE: 1,
}


@dataclass
class TestSettings:
    """How one scenario run is driven; every field is recorded with the result.

    Times are in seconds. A run stops when both ``min_duration`` and ``min_query_count`` are met,
    or earlier at ``max_duration`` / ``max_query_count`` (then it is not valid).
    """

    __test__ = False  # not a pytest test class, despite the name LoadGen gave it

    scenario: BenchmarkScenario
    min_duration: float = 10.0
    min_query_count: int | None = None  # None: the scenario's default (100; 662 MultiStream; 459 Server; 1 Offline)
    max_duration: float | None = None
    max_query_count: int | None = None
    percentile: float | None = None  # None: 0.90 SingleStream, 0.99 MultiStream and Server
    samples_per_query: int | None = None  # MultiStream: 8
    server_target_qps: float = 10.0
    server_target_latency: float = 0.100  # the Server scenario's latency bound (LoadGen's code default)
    server_max_batch: int = 1  # the system may answer up to this many waiting queries in one batch
    offline_sample_count: int = 24576
    offline_batch_size: int = 64
    seed: int = 0  # chooses the samples and the Server scenario's arrival times

    def __post_init__(self) -> None:
        self.scenario = BenchmarkScenario.parse(self.scenario)
        if self.min_query_count is None:
            self.min_query_count = DEFAULT_MIN_QUERIES[self.scenario]
        if self.percentile is None:
            self.percentile = DEFAULT_PERCENTILE[self.scenario]
        if self.samples_per_query is None:
            self.samples_per_query = 8 if self.scenario is BenchmarkScenario.MULTI_STREAM else 1
        problems = []
        if self.min_duration < 0:
            problems.append(f"min_duration must be at least 0 s, got {self.min_duration}")
        if self.min_query_count < 1:
            problems.append(f"min_query_count must be at least 1, got {self.min_query_count}")
        if self.scenario is BenchmarkScenario.MULTI_STREAM and self.min_query_count < MULTI_STREAM_MIN_QUERIES:
            problems.append(
                f"MultiStream needs at least {MULTI_STREAM_MIN_QUERIES} queries (the minimum for its 99th-percentile "
                f"early-stopping estimate), got min_query_count={self.min_query_count}"
            )
        if not 0.0 < self.percentile < 1.0:
            problems.append(f"percentile must be a fraction in (0, 1), got {self.percentile}")
        for name in ("samples_per_query", "server_max_batch", "offline_sample_count", "offline_batch_size"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.server_target_qps <= 0 or self.server_target_latency <= 0:
            problems.append("server_target_qps and server_target_latency must be positive")
        if self.max_query_count is not None and self.max_query_count < 1:
            problems.append(f"max_query_count must be at least 1, got {self.max_query_count}")
        if problems:
            raise ValueError(f"TestSettings({self.scenario.value}): " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        settings["scenario"] = self.scenario.value
        return settings
