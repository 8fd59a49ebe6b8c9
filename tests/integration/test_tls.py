"""TLS options (ca, verify, server_name, cert/key) against a local TLS server with a CA made by
the test (openssl): verification with the CA passes, without it fails with class ``tls``, a
server that requires a client certificate accepts the one given, for the ``http`` and ``flow``
workloads; missing files are refused at validation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from enduro.base.errors import PlanError
from enduro.plan import load_plan
from tests.helpers.pki import make_pki
from tests.helpers.plans import http_plan, run_plan, write_plan
from tests.helpers.procs import free_port, only_run, stop, wait_port

SERVER = '''
import asyncio, ssl, sys
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if ca != "-":
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
            await writer.drain()
    except Exception:
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
def tls_server(pki: Path, tmp_path: Path, *, client_ca: bool = False) -> Iterator[int]:
    script = tmp_path / "tls_server.py"
    script.write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(pki / "server.pem"),
                             str(pki / "server.key"),
                             str(pki / "ca.pem") if client_ca else "-"])
    try:
        wait_port(port)
        yield port
    finally:
        stop(proc)


def run(tmp_path: Path, plan: dict[str, Any]) -> dict[str, Any]:
    run_plan(tmp_path, plan)
    return json.loads((only_run(tmp_path / "runs") / "results.json").read_text())


def flow_plan(base: str, tls: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "duration": "2s", "seed": 1, "grace": "1s",
            "workloads": {"f": {"flow": {"base": base, "connections": 2, "tls": tls,
                                         "steps": [{"name": "get", "request": {"path": "/"}}]}}}}


@pytest.mark.slow(11)
def test_verify_with_the_ca_passes_and_without_it_fails_with_class_tls(
        pki: Path, tmp_path: Path) -> None:
    with tls_server(pki, tmp_path) as port:
        base = f"https://127.0.0.1:{port}"
        ok = run(tmp_path / "ca", http_plan(base, requests=[{"name": "get", "path": "/"}],
                                            duration="2s", connections=2,
                                            tls={"ca": str(pki / "ca.pem")}))
        assert ok["ops"]["get"]["requests"] > 10 and ok["ops"]["get"]["errors"] == 0, ok["ops"]
        bad = run(tmp_path / "noca", http_plan(base, requests=[{"name": "get", "path": "/"}],
                                               duration="2s", connections=2))
        assert bad["errors_by_class"].get("tls", 0) > 0, bad["errors_by_class"]
        assert bad["ops"]["get"]["requests"] == bad["errors_by_class"]["tls"]
        # The name in the certificate, not the address, given as server_name.
        named = run(tmp_path / "named", flow_plan(base, {"ca": str(pki / "ca.pem"),
                                                          "server_name": "api.test"}))
        assert named["ops"]["f.get"]["requests"] > 10, named["ops"]
        assert named["ops"]["f.get"]["errors"] == 0, named["errors_by_class"]
        off = run(tmp_path / "off", flow_plan(base, {"verify": False}))
        assert off["ops"]["f.get"]["errors"] == 0 and off["ops"]["f.get"]["requests"] > 10
        wrong = run(tmp_path / "wrong", flow_plan(base, {"ca": str(pki / "ca.pem"),
                                                          "server_name": "other.test"}))
        assert wrong["ops"]["f.get"]["requests"] > 0
        assert wrong["errors_by_class"].get("tls") == wrong["ops"]["f.get"]["requests"]


@pytest.mark.slow(7)
def test_a_client_certificate_the_server_requires(pki: Path, tmp_path: Path) -> None:
    with tls_server(pki, tmp_path, client_ca=True) as port:
        base = f"https://127.0.0.1:{port}"
        tls = {"ca": str(pki / "ca.pem"), "cert": str(pki / "client.pem"),
               "key": str(pki / "client.key")}
        for kind, plan in (
                ("http", http_plan(base, requests=[{"name": "get", "path": "/"}],
                                   duration="2s", connections=2, tls=tls)),
                ("flow", flow_plan(base, tls))):
            results = run(tmp_path / kind, plan)
            op = results["ops"]["get" if kind == "http" else "f.get"]
            assert op["requests"] > 10 and op["errors"] == 0, (kind, results["errors_by_class"])
        without = run(tmp_path / "without", http_plan(
            base, requests=[{"name": "get", "path": "/"}], duration="2s", connections=2,
            tls={"ca": str(pki / "ca.pem")}))
        assert without["ops"]["get"]["errors"] == without["ops"]["get"]["requests"] > 0


@pytest.mark.parametrize("key", ["ca", "cert", "key"])
def test_missing_tls_files_are_refused_at_validation(pki: Path, tmp_path: Path,
                                                     key: str) -> None:
    tls = {"cert": str(pki / "client.pem"), "key": str(pki / "client.key"),
           key: "missing.pem"}
    for plan in (http_plan("https://127.0.0.1:1", requests=[{"name": "get", "path": "/"}],
                           connections=1, tls=tls),
                 flow_plan("https://127.0.0.1:1", tls)):
        with pytest.raises(PlanError) as caught:
            load_plan(write_plan(tmp_path, plan))
        assert "missing.pem" in str(caught.value) and f"tls.{key}" in str(caught.value)
