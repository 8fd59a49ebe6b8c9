import random
from array import array

from hdrh.histogram import HdrHistogram

from enduro.observe.hist import HIGHEST_US, decode, encode, fold, new_histogram, percentiles_ms
from enduro.observe.metrics import Metrics
from enduro.observe.window import Recorder, WindowStats


def test_folding_a_buffer_equals_recording_each_value() -> None:
    rng = random.Random(3)
    values = [int(rng.lognormvariate(7, 1.2)) + 1 for _ in range(20_000)]
    folded = fold(array("q", values))
    one_by_one = new_histogram()
    for v in values:
        one_by_one.record_value(v)
    assert folded.get_total_count() == 20_000
    for p in (50, 90, 99, 99.9, 100):
        assert folded.get_value_at_percentile(p) == one_by_one.get_value_at_percentile(p)


def test_the_mean_is_hdrhs() -> None:
    rng = random.Random(4)
    values = [int(rng.lognormvariate(9, 2)) + 1 for _ in range(20_000)] + [3_500_000_000]
    folded = fold(array("q", values))
    plain = HdrHistogram(1, HIGHEST_US, 3)
    for v in values:
        plain.record_value(v)
    assert folded.get_mean_value() == plain.get_mean_value()
    assert new_histogram().get_mean_value() == 0.0


def test_merging_windows_across_workers_is_lossless() -> None:
    rng = random.Random(5)
    all_values: list[int] = []
    metrics = Metrics(window_s=1.0)
    for _worker in range(3):
        for index in range(10):
            values = [rng.randint(100, 5_000_000) for _ in range(500)]
            all_values += values
            w = WindowStats(op="get", index=index, requests=len(values),
                            latency=fold(array("q", values)))
            # Through the wire format, as --workers sends them.
            metrics.add([WindowStats.from_wire(w.to_wire())])
    metrics.seal(9)
    whole = metrics.view(elapsed_s=10)
    direct = fold(array("q", all_values))
    assert whole.requests == len(all_values) == 15_000
    assert whole.latency.get_total_count() == direct.get_total_count()
    for p in (50, 95, 99, 99.9):
        assert whole.latency.get_value_at_percentile(p) == direct.get_value_at_percentile(p)


def test_sliding_view_reads_only_the_last_windows() -> None:
    metrics = Metrics(window_s=1.0, keep_s=30)
    for index in range(100):
        errors = 10 if index >= 95 else 0
        metrics.add([WindowStats(op="a", index=index, requests=100, errors=errors)])
        metrics.seal(index)
    assert metrics.view(last_s=5).error_rate == 0.1
    assert metrics.view(elapsed_s=100).error_rate == 0.005
    # Memory is bounded: old windows are trimmed, totals kept.
    assert metrics.ring_size <= 32
    assert metrics.view(elapsed_s=100).requests == 10_000


def test_recorder_rotation_resets_counters_in_place() -> None:
    rec = Recorder(["a"])
    counter = rec.counter("a")
    counter.requests += 2
    counter.lat.extend([1000, 3000])
    counter.error("5xx")
    (sealed,) = rec.rotate(1)
    assert (sealed.index, sealed.requests, sealed.errors, sealed.classes) == (0, 2, 1, {"5xx": 1})
    assert counter.requests == 0 and len(counter.lat) == 0 and counter.classes == {}
    assert rec.counter("a") is counter


def test_encode_roundtrip_and_percentiles() -> None:
    h = fold(array("q", [1000] * 99 + [250_000]))
    back = decode(encode(h))
    assert percentiles_ms(back)["p50"] == percentiles_ms(h)["p50"] == 1.0
    assert 249 < percentiles_ms(back)["max"] < 251
