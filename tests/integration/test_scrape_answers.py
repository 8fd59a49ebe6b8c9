"""A JSON scrape reads only a 200 answer: an error's body, JSON or not, is no reading."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from enduro.net.client import HttpClient
from enduro.observe.scrape import Scraped, scrape_service
from enduro.plan.models import Scrape
from tests.helpers.procs import free_port

BODY = json.dumps({"depth": 7, "rows": [{"name": "a", "v": 1}]}).encode()


class _Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = int(self.path.strip("/"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _scrape(url: str) -> Scraped:
    async def once() -> Scraped:
        client = HttpClient(timeout=5.0)
        try:
            spec = Scrape.model_validate({"json": {
                "url": url, "paths": {"depth": "$.depth"},
                "tables": {"t": {"rows": "$.rows[*]", "fields": {"v": "$.v"}}}}})
            return await scrape_service(client, spec, {})
        finally:
            await client.close()

    return asyncio.run(once())


def test_a_json_error_answer_is_a_failed_scrape() -> None:
    with _server() as url:
        ok, failed = _scrape(f"{url}/200"), _scrape(f"{url}/500")
    assert ("scrape_up", "", 1.0) in ok.values and ("depth", "", 7.0) in ok.values
    assert set(ok.tables["t"].rows) == {"a"}
    # Same JSON body with a 500: down, no figures, no table (the last one is kept).
    assert failed.values == [("scrape_up", "", 0.0)]
    assert failed.tables == {}
