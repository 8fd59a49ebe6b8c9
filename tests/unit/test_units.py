import pytest

from enduro.base.units import (
    MAX_DURATION,
    MAX_RATE,
    MAX_SIZE,
    format_duration,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("15m", 900), ("1h30m", 5400), ("2h", 7200), ("90", 90), (5, 5.0),
    ("1.5s", 1.5), ("100us", 1e-4), ("1d", 86400), ("3min", 180),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "fast", "10 parsecs", "5x", "-3s", True, -1, "1h junk"])
def test_bad_durations_say_what_was_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "per_s"), [
    ("100/s", 100), ("3/min", 0.05), ("5/10s", 0.5), ("7200/h", 2), ("20", 20), (4.5, 4.5),
])
def test_rates(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("bad", ["fast", "10/parsec", "/s", True])
def test_bad_rates(bad: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "size"), [
    ("10MB", 10_000_000), ("1GiB", 1024**3), ("512KB", 512_000), ("64", 64), ("2MiB", 2 * 1024**2),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size("ten megs")


def test_percent() -> None:
    assert parse_percent("99.9%") == pytest.approx(0.999)
    assert parse_percent(0.5) == 0.5
    with pytest.raises(ValueError, match="percentage"):
        parse_percent("lots%")


def test_format_duration() -> None:
    assert format_duration(0.85) == "850ms"
    assert format_duration(42) == "42s"
    assert format_duration(725) == "12m05s"
    assert format_duration(7380) == "2h03m"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "31d", "1000000000000000000000d",
                                 2_592_001, "721h"])
def test_durations_are_finite_and_at_most_30_days(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_thirty_days_is_the_longest_duration() -> None:
    assert parse_duration("30d") == MAX_DURATION == 30 * 86400


@pytest.mark.parametrize(("bad", "why"), [
    ("5/0s", "interval of a rate must be positive"), ("5/0ms", "interval"),
    (float("nan"), "finite"), (float("inf"), "finite"), ("2000000/s", "at most"),
    (-1, "negative"),
])
def test_bad_rates_never_divide_by_zero(bad: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_rate(bad)  # type: ignore[arg-type]


def test_a_zero_rate_parses_for_ramps_to_zero() -> None:
    assert parse_rate("0/s") == 0.0
    assert parse_rate(MAX_RATE) == MAX_RATE


@pytest.mark.parametrize(("bad", "why"), [(-5, "negative"), ("2TiB", "at most"),
                                          (MAX_SIZE + 1, "at most"), ("nan", "size")])
def test_sizes_are_bounded(bad: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "nan%", "inf"])
def test_percentages_are_finite(bad: object) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_percent(bad)  # type: ignore[arg-type]
