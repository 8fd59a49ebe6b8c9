"""Readiness probes and scrapes take the workloads' TLS options (ca, verify, server_name,
client cert) and headers (with ``${token:name}``), against a local TLS server with a CA made
by the test (openssl); a restarted service is ready only once it wrote a new token file, so
requests never carry the previous incarnation's token."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from enduro.api import load_checked
from enduro.base.errors import PlanError
from enduro.observe.scrape import scrape_client, scrape_once
from enduro.plan.models import Ready, Scrape
from enduro.services.ready import NeverReady, TokenWait, wait_ready
from tests.helpers.pki import make_pki
from tests.helpers.plans import run_plan, write_plan
from tests.helpers.procs import REPO, free_port, only_run, stop, wait_port

TOKEN_SERVICE = REPO / "tests" / "helpers" / "token_service.py"

# Answers 200 (Prometheus text on /metrics) when the request carries the header given as
# argv[5] ("-": none needed), else 401; TLS with the server certificate, requiring a client
# certificate signed by the CA when argv[4] is the CA.
SERVER = '''
import asyncio, ssl, sys
port, cert, key, ca, need = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if ca != "-":
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
async def handle(reader, writer):
    try:
        for _ in range(100000):
            head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode("latin-1")
            lines = head.split("\\r\\n")
            path = lines[0].split(" ")[1]
            if need != "-" and need.lower() not in [l.lower() for l in lines[1:]]:
                writer.write(b"HTTP/1.1 401 Unauthorized\\r\\nContent-Length: 0\\r\\n\\r\\n")
            else:
                body = b"# TYPE hits counter\\nhits_total 7\\n" if path == "/metrics" else b"ok"
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s"
                             % (len(body), body))
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and the name ``api.test``, a client one."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def tls_server(pki: Path, tmp_path: Path, *, client_ca: bool = False,
               need: str = "-") -> Iterator[str]:
    script = tmp_path / "tls_server.py"
    script.write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(pki / "server.pem"),
                             str(pki / "server.key"),
                             str(pki / "ca.pem") if client_ca else "-", need])
    try:
        wait_port(port)
        yield f"https://127.0.0.1:{port}"
    finally:
        stop(proc)


def probe(url: str, **extra: Any) -> Ready:
    return Ready.model_validate({"http": url, "timeout": "1s", "interval": "50ms", **extra})


# -- readiness probes --------------------------------------------------------------------------

def test_an_https_probe_checks_the_certificate_with_its_tls_options(pki: Path,
                                                                    tmp_path: Path) -> None:
    ca = str(pki / "ca.pem")
    with tls_server(pki, tmp_path) as base:
        url = f"{base}/health"
        asyncio.run(wait_ready("api", probe(url, tls={"ca": ca})))
        asyncio.run(wait_ready("api", probe(url, tls={"ca": ca, "server_name": "api.test"})))
        # Without tls a probe does not check the certificate, as Kubernetes probes.
        asyncio.run(wait_ready("api", probe(url)))
        asyncio.run(wait_ready("api", probe(url, tls={"verify": False})))
        with pytest.raises(NeverReady, match="certificate verify failed"):
            asyncio.run(wait_ready("api", probe(url, tls={})))  # system CAs only
        with pytest.raises(NeverReady, match="certificate verify failed"):
            asyncio.run(wait_ready("api", probe(url, tls={"ca": ca,
                                                          "server_name": "other.test"})))


def test_a_probe_presents_its_client_certificate(pki: Path, tmp_path: Path) -> None:
    ca = str(pki / "ca.pem")
    with tls_server(pki, tmp_path, client_ca=True) as base:
        url = f"{base}/health"
        asyncio.run(wait_ready("api", probe(url, tls={
            "ca": ca, "cert": str(pki / "client.pem"), "key": str(pki / "client.key")})))
        with pytest.raises(NeverReady, match="was not ready within 1s"):
            asyncio.run(wait_ready("api", probe(url, tls={"ca": ca})))


def test_a_probe_sends_its_headers_with_current_tokens(pki: Path, tmp_path: Path) -> None:
    with tls_server(pki, tmp_path, need="Authorization: Bearer s3cret") as base:
        url = f"{base}/health"
        with pytest.raises(NeverReady, match="answered 401 5 times in a row"):
            asyncio.run(wait_ready("api", probe(url)))
        asyncio.run(wait_ready("api", probe(
            url, headers={"Authorization": "Bearer s3cret"})))
        # Another service's token, as it is when the probe is sent.
        auth = probe(url, headers={"Authorization": "Bearer ${token:auth}"})
        asyncio.run(wait_ready("api", auth, tokens={"auth": "s3cret"}))
        with pytest.raises(NeverReady, match="answered 401"):
            asyncio.run(wait_ready("api", auth, tokens={"auth": "stale"}))


# -- the token file after a (re)start ----------------------------------------------------------

def test_a_token_file_from_before_the_launch_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "api.token"
    path.write_text("old\n")
    ready = Ready.model_validate({"file": str(path), "timeout": "400ms", "interval": "20ms"})
    wait = TokenWait.before_launch(path)
    with pytest.raises(NeverReady, match="was not written since the launch"):
        asyncio.run(wait_ready("api", ready, token=wait))
    assert wait.token is None

    async def rewritten(text: str) -> TokenWait:
        wait = TokenWait.before_launch(path)
        loop = asyncio.get_running_loop()

        def write() -> None:  # atomically, as services do: a new inode
            (tmp_path / "tmp").write_text(text)
            os.replace(tmp_path / "tmp", path)
        loop.call_later(0.1, write)
        await wait_ready("api", ready, token=wait)
        return wait

    assert asyncio.run(rewritten("new\n")).token == "new"
    # The same token written again is a new file: the service did write it.
    assert asyncio.run(rewritten("new\n")).token == "new"
    # A service that keeps its token across restarts: fresh_token false reads it at once.
    kept = TokenWait.before_launch(path, fresh=False)
    asyncio.run(wait_ready("api", ready, token=kept))
    assert kept.token == "new"


def test_a_token_file_rewritten_in_place_counts_and_an_empty_one_is_waited_for(
        tmp_path: Path) -> None:
    path = tmp_path / "api.token"
    path.write_text("old-token\n")
    ready = Ready.model_validate({"file": str(path), "timeout": "2s", "interval": "20ms"})

    async def main() -> TokenWait:
        wait = TokenWait.before_launch(path)
        loop = asyncio.get_running_loop()
        # Truncated first (empty: not yet a token), then written, in place (same inode).
        loop.call_later(0.1, lambda: path.open("w").close())
        loop.call_later(0.3, lambda: path.write_text("new-token\n"))
        await wait_ready("api", ready, token=wait)
        return wait

    assert asyncio.run(main()).token == "new-token"


def _restart_plan(port: int, log: Path, *, probe: bool) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    # The service writes its new token 0.6 s after it starts (a slow start); before the fix
    # the previous incarnation's file made it ready at once, with the old token.
    command = [sys.executable, "-c",
               "import runpy, sys, time; time.sleep(0.6); sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')",
               str(TOKEN_SERVICE), "--port", str(port), "--token-file", "data/api.token",
               "--log", str(log)]
    service: dict[str, Any] = {"command": command, "url": base, "ports": [port],
                               "token_file": "data/api.token"}
    if probe:
        # A probe that needs the service's own token: sent once the new file is read.
        service["ready"] = {"http": f"{base}/probe", "interval": "50ms",
                            "headers": {"Authorization": "Bearer ${token:api}"}}
    return {
        "name": "race", "duration": "5s", "seed": 3, "grace": "2s",
        "services": {"api": service},
        "workloads": {"h": {"http": {"service": "api", "rate": "40/s",
                                     "headers": {"Authorization": "Bearer ${token:api}"},
                                     "requests": [{"name": "h", "path": "/http"}]}}},
        "faults": [{"at": "2s", "restart": "api"}]}


@pytest.mark.parametrize("probe", [False, True], ids=["token-file", "probe-with-own-token"])
@pytest.mark.slow(6)
def test_after_a_restart_the_new_token_is_used(tmp_path: Path, probe: bool) -> None:
    log = tmp_path / "server.jsonl"
    run_plan(tmp_path, _restart_plan(free_port(), log, probe=probe))
    run_dir = only_run(tmp_path / "runs")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    ready = [e for e in events if e["event"] == "service_ready"]
    assert len(ready) == 2, [e["event"] for e in events]
    # Each start waited for its own token file (written 0.6 s after the launch).
    assert all(e["took_s"] >= 0.5 for e in ready), ready
    assert [e["event"] for e in events].count("token_refreshed") == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    pids = list(dict.fromkeys(r["pid"] for r in records))
    assert len(pids) == 2, pids
    after = [r for r in records if r["pid"] == pids[1] and r["path"] == "/http"]
    assert len([r for r in after if r["ok"]]) >= 20, len(after)
    # A request already on its way at the ready point may be read a moment later.
    rejected = [r for r in after if not r["ok"] and r["t"] > ready[1]["wall"] + 0.1]
    assert rejected == [], (len(rejected), len(after))
    if probe:
        probes = [r for r in records if r["path"] == "/probe"]
        assert probes and all(r["ok"] for r in probes), probes


# -- scrapes -----------------------------------------------------------------------------------

def test_a_scrape_uses_its_tls_options(pki: Path, tmp_path: Path) -> None:
    async def scrape(tls: dict[str, Any], headers: dict[str, str] | None = None,
                     ) -> dict[str, float]:
        spec = Scrape.model_validate({"prometheus": f"{base}/metrics", "tls": tls})
        client = scrape_client(spec)
        try:
            assert client.context is not None  # one context, built with the client
            return {n: v for n, _, v in await scrape_once(client, spec, headers or {})}
        finally:
            await client.close()

    ca = str(pki / "ca.pem")
    with tls_server(pki, tmp_path, client_ca=True) as base:
        mtls = {"ca": ca, "cert": str(pki / "client.pem"), "key": str(pki / "client.key")}
        assert asyncio.run(scrape(mtls)) == {"hits_total": 7.0, "scrape_up": 1.0}
        named = asyncio.run(scrape({**mtls, "server_name": "api.test"}))
        assert named["scrape_up"] == 1.0
        assert asyncio.run(scrape({**mtls, "server_name": "other.test"})) == {"scrape_up": 0}
        assert asyncio.run(scrape({"ca": ca})) == {"scrape_up": 0.0}  # no client certificate
        # The default checks the certificate with the system's CAs, as curl.
        assert asyncio.run(scrape({})) == {"scrape_up": 0.0}


def test_a_run_scrapes_and_probes_an_https_service_with_a_private_ca(
        pki: Path, tmp_path: Path) -> None:
    """The plan's relative tls paths, read from the plan's folder, reach the probe and the
    scraper of a real run."""
    for name in ("ca.pem", "client.pem", "client.key"):
        shutil.copy(pki / name, tmp_path / name)
    tls = {"ca": "ca.pem", "cert": "client.pem", "key": "client.key"}
    auth = {"Authorization": "Bearer s3cret"}
    with tls_server(pki, tmp_path, client_ca=True, need="Authorization: Bearer s3cret") as base:
        run_plan(tmp_path, {
            "name": "scraped", "duration": "2s", "seed": 1, "grace": "1s",
            "services": {"api": {
                "url": base,
                "ready": {"http": f"{base}/health", "headers": auth, "tls": tls,
                          "timeout": "5s", "interval": "50ms"},
                "scrape": {"prometheus": f"{base}/metrics", "every": "200ms",
                           "headers": auth, "tls": tls}}},
            "workloads": {"w": {"http": {"service": "api", "rate": "10/s", "headers": auth,
                                         "tls": tls, "requests": [{"name": "get",
                                                                   "path": "/"}]}}}})
        run_dir = only_run(tmp_path / "runs")
        db = sqlite3.connect(run_dir / "metrics.sqlite")
        try:
            rows = db.execute("SELECT metric, value FROM scrapes WHERE service = 'api'"
                              ).fetchall()
        finally:
            db.close()
        ups = [v for m, v in rows if m == "scrape_up"]
        assert len(ups) >= 3 and set(ups) == {1.0}, rows
        assert {v for m, v in rows if m == "hits_total"} == {7.0}, rows
        results = json.loads((run_dir / "results.json").read_text())
        assert results["ops"]["get"]["errors"] == 0 and results["ops"]["get"]["requests"] > 5


# -- validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("part", ["ready", "scrape"])
@pytest.mark.parametrize("key", ["ca", "cert", "key"])
def test_missing_tls_files_of_probes_and_scrapes_are_refused_at_validation(
        pki: Path, tmp_path: Path, part: str, key: str) -> None:
    tls = {"cert": str(pki / "client.pem"), "key": str(pki / "client.key"), key: "missing.pem"}
    spec = ({"http": "https://127.0.0.1:1/health", "tls": tls} if part == "ready"
            else {"prometheus": "https://127.0.0.1:1/metrics", "tls": tls})
    path = write_plan(tmp_path, {"name": "t", "duration": "1s",
                                 "services": {"api": {"url": "https://127.0.0.1:1",
                                                      part: spec}}})
    with pytest.raises(PlanError) as caught:
        load_checked(path)
    text = str(caught.value)
    assert f"{tmp_path / 'missing.pem'}" in text, text
    assert f"services.api.{part}.tls.{key}" in text and "plan.yaml:" in text, text


def test_probe_and_scrape_headers_are_validated(tmp_path: Path) -> None:
    auth = {"Authorization": "Bearer ${token:db}"}
    path = write_plan(tmp_path, {"name": "t", "duration": "1s", "services": {
        "db": {"command": ["true"], "token_file": "db.token"},
        "api": {"command": ["true"],
                "ready": {"http": "http://127.0.0.1:1/health", "headers": auth},
                "scrape": {"prometheus": "http://127.0.0.1:1/m",
                           "headers": {"X-Key": "${token:nope}", "X-Id": "{{id}}"}}}}})
    with pytest.raises(PlanError) as caught:
        load_checked(path)
    text = str(caught.value)
    assert "service 'db' is not started before this probe; add it to depends_on" in text, text
    assert "services.api.ready.headers.Authorization" in text
    assert "${token:nope} names a service without a token_file (no service 'nope')" in text
    assert "{{id}} is not filled in here" in text
    # With the dependency (and no unknown names) the same probe is accepted.
    path = write_plan(tmp_path, {"name": "t", "duration": "1s", "services": {
        "db": {"command": ["true"], "token_file": "db.token"},
        "api": {"command": ["true"], "depends_on": ["db"],
                "ready": {"http": "http://127.0.0.1:1/health", "headers": auth},
                "scrape": {"prometheus": "http://127.0.0.1:1/m", "headers": auth}}}})
    load_checked(path)
    with pytest.raises(PlanError, match="headers and tls apply to an 'http' probe"):
        load_checked(write_plan(tmp_path, {"name": "t", "duration": "1s", "services": {
            "api": {"command": ["true"], "ready": {"tcp": "127.0.0.1:1",
                                                   "headers": {"X": "1"}}}}}))
