"""Who may read the dashboard: the listen address, the token, the Host header."""

from __future__ import annotations

from pathlib import Path

import pytest

from enduro.base.errors import PlanError
from enduro.dashboard.access import Access, Listen, bearer, is_loopback, parse_listen
from enduro.dashboard.reader import finite


@pytest.mark.parametrize(("text", "host", "port", "loopback"), [
    ("127.0.0.1:8089", "127.0.0.1", 8089, True),
    ("localhost:80", "127.0.0.1", 80, True),
    ("127.0.0.2:0", "127.0.0.2", 0, True),
    ("9000", "127.0.0.1", 9000, True),
    ("[::1]:8089", "::1", 8089, True),
    ("0.0.0.0:8089", "0.0.0.0", 8089, False),
    ("10.1.2.3:8089", "10.1.2.3", 8089, False),
    ("[::]:8089", "::", 8089, False),
])
def test_listen_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    listen = parse_listen(text)
    assert (listen.host, listen.port, listen.loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["", "nowhere:80", "example.com:80", "127.0.0.1",
                                  "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                                  "127.0.0.1:8o", "::1:80", "[::1]", "[::1]8089",
                                  "256.0.0.1:80", ":8089"])
def test_bad_listen_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_listen(text)
    assert str(caught.value).startswith("--listen") and "\n" not in str(caught.value)


def test_url_brackets_ipv6() -> None:
    assert Listen("::1", 80).url() == "http://[::1]:80/"
    assert Listen("127.0.0.1", 80).url(81) == "http://127.0.0.1:81/"
    assert not is_loopback("localhost")  # names are resolved by parse_listen only


def test_the_token_is_required_when_set() -> None:
    access = Access("s3cret")
    assert access.allows_token("token=s3cret", None)
    assert access.allows_token("since=1&token=s3cret", None)
    assert access.allows_token("", "Bearer s3cret")
    assert access.allows_token("", "bearer   s3cret ")
    assert not access.allows_token("", None)
    assert not access.allows_token("token=s3cre", None)
    assert not access.allows_token("token=", "Bearer wrong")
    assert not access.allows_token("", "Basic s3cret")
    assert not access.allows_token("token=S3CRET", None)
    assert Access(None).allows_token("", None)


def test_bearer_header() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("Bearer") is None and bearer(None) is None and bearer("Token abc") is None


def test_a_loopback_listener_wants_a_loopback_host() -> None:
    access = Access(None)
    for host in ("127.0.0.1:8089", "localhost:8089", "LOCALHOST", "[::1]:8089", "127.0.0.2"):
        assert access.allows_host(host), host
    for host in (None, "", "evil.example", "evil.example:8089", "10.0.0.1:8089",
                 "127.0.0.1.evil.example"):
        assert not access.allows_host(host), host
    assert Access("t").allows_host("dashboard.example:8089")  # the token guards it there


def test_finite_numbers_only() -> None:
    data = {"a": float("nan"), "b": [1.0, float("inf"), {"c": -float("inf")}], "d": 2}
    assert finite(data) == {"a": None, "b": [1.0, None, {"c": None}], "d": 2}


def test_dashboard_followed_by_the_plan_takes_the_default_address() -> None:
    from enduro.cli import DEFAULT_DASHBOARD, _dashboard_default, build_parser
    parse = build_parser().parse_args
    args = parse(_dashboard_default(["run", "--dashboard", "plan.yaml"]))
    assert args.dashboard == DEFAULT_DASHBOARD and str(args.plan) == "plan.yaml"
    for address in ("9000", "0.0.0.0:9000", "[::1]:9000", "localhost:9000"):
        args = parse(_dashboard_default(["start", "--dashboard", address, "plan.yaml"]))
        assert args.dashboard == address and str(args.plan) == "plan.yaml"
    assert parse(_dashboard_default(["run", "plan.yaml"])).dashboard is None
    assert parse(_dashboard_default(["run", "plan.yaml", "--dashboard"])).dashboard == \
        DEFAULT_DASHBOARD


def test_a_bound_dashboard_off_loopback_says_its_token_once() -> None:
    import socket

    from enduro.dashboard.launch import Bound
    with socket.socket() as sock:
        off = Bound(sock, Listen("0.0.0.0", 9000), 9001, "s3cret", "note")
        lines = off.lines()
        assert lines[0] == "note" and lines[1] == "dashboard: http://0.0.0.0:9001/?token=s3cret"
        assert sum("s3cret" in line for line in lines) == 1
        assert Bound(sock, Listen("127.0.0.1", 0), 5, None, None).lines() == [
            "dashboard: http://127.0.0.1:5/"]


def test_dashboard_followed_by_what_is_no_plan_is_its_address(tmp_path: Path) -> None:
    """``--dashboard garbage`` is a bad address (named so by the address check), not a
    stray plan argparse can only call unrecognized; an existing file stays the plan."""
    from enduro.cli import DEFAULT_DASHBOARD, _dashboard_default
    for value in ("garbage", "localhost", "127.0.0.1", "[::1]"):
        assert _dashboard_default(["run", "p.yaml", "--dashboard", value]) == \
            ["run", "p.yaml", "--dashboard", value]
    plan = tmp_path / "plan"
    plan.write_text("name: x\n")
    assert _dashboard_default(["run", "--dashboard", str(plan)]) == \
        ["run", f"--dashboard={DEFAULT_DASHBOARD}", str(plan)]
    assert _dashboard_default(["run", "--dashboard", "--workers", "2", "p.yaml"])[1] == \
        f"--dashboard={DEFAULT_DASHBOARD}"
