"""The demo service's downloads resource: downloads with parts and a lifecycle (create, list,
get, pause, resume, cancel, delete), an idempotent create honouring ``Idempotency-Key``, and
their progress a tick at a time."""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enduro.demo.responses import Response
from enduro.demo.responses import json_response as _json

__all__ = ["Download", "Downloads"]

_TERMINAL = frozenset({"completed", "cancelled"})
_MAX_DOWNLOADS = 5000
_MAX_KEYS = 10000


@dataclass
class Download:
    """One download and its parts."""

    id: str
    url: str
    parts: list[dict[str, Any]]
    state: str = "queued"
    created_at: float = 0.0
    updated_at: float = 0.0

    def view(self) -> dict[str, Any]:
        done = sum(p["done"] for p in self.parts)
        size = sum(p["size"] for p in self.parts)
        return {"id": self.id, "url": self.url, "state": self.state,
                "progress": round(done / size, 4) if size else 1.0,
                "parts": len(self.parts), "created_at": self.created_at,
                "updated_at": self.updated_at}


class Downloads:
    """The downloads held, the idempotency keys seen, and the handlers of the resource.
    ``publish`` tells of each state change, ``persist`` keeps a record of each create and
    delete; ``defects`` may hold ``leak`` and ``fd-leak`` (see ``DemoApp``)."""

    def __init__(self, defects: frozenset[str], publish: Callable[[str, Download], None],
                 persist: Callable[[dict[str, Any]], None]) -> None:
        self.defects = defects
        self._publish = publish
        self._persist = persist
        self.held: OrderedDict[str, Download] = OrderedDict()
        self.keys: OrderedDict[str, tuple[str, str]] = OrderedDict()  # key -> (body hash, id)
        self.next_id = 0
        self._leaked: list[bytes] = []
        self._leaked_files: list[Any] = []

    def list_downloads(self, *, query: dict[str, list[str]], **_: Any) -> Response:
        state = query.get("state", [None])[0]
        url = query.get("url", [None])[0]
        limit = min(int(query.get("limit", ["50"])[0]), 500)
        offset = int(query.get("offset", ["0"])[0])
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        items = [d for d in reversed(self.held.values())
                 if state in (None, d.state) and url in (None, d.url)]
        page = [d.view() for d in items[offset:offset + limit]]
        return _json(200, {"items": page, "total": len(items), "limit": limit,
                           "offset": offset})

    def create(self, *, headers: dict[str, str], body: bytes, **_: Any) -> Response:
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"error": "body is not JSON"})
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            return _json(422, {"error": "expected {\"url\": string, \"parts\": 1..16}"})
        parts = doc.get("parts", 4)
        if not isinstance(parts, int) or not 1 <= parts <= 16:
            return _json(422, {"error": "parts must be an integer from 1 to 16"})
        key = headers.get("idempotency-key")
        digest = json.dumps(doc, sort_keys=True)
        if key is not None:
            seen = self.keys.get(key)
            if seen is not None:
                if seen[0] != digest:
                    return _json(422, {"error": "Idempotency-Key reused with another body"})
                existing = self.held.get(seen[1])
                if existing is not None:
                    return _json(200, existing.view(), **{"Idempotent-Replayed": "true"})
        self.next_id += 1
        now = time.time()
        download = Download(
            id=f"d{self.next_id}", url=doc["url"],
            parts=[{"n": i, "size": 64 * 1024, "done": 0} for i in range(parts)],
            created_at=now, updated_at=now)
        self.held[download.id] = download
        if "leak" in self.defects:
            self._leaked.append(os.urandom(64 * 1024))
        if "fd-leak" in self.defects:
            self._leaked_files.append(open(os.devnull, "rb"))  # noqa: SIM115 - the defect
        self._persist({"id": download.id, "url": download.url, "parts": parts, "key": key,
                       "digest": digest, "created_at": now})
        if key is not None:
            self.keys[key] = (digest, download.id)
            while len(self.keys) > _MAX_KEYS:
                self.keys.popitem(last=False)
        self._evict()
        self._publish("created", download)
        return _json(201, download.view(), Location=f"/api/v1/downloads/{download.id}")

    def restore(self, rec: dict[str, Any]) -> None:
        """Apply one record an earlier run of the service kept (a create or a delete)."""
        if "deleted" in rec:
            self.held.pop(rec["deleted"], None)
            return
        d = Download(id=rec["id"], url=rec["url"],
                     parts=[{"n": i, "size": 64 * 1024, "done": 64 * 1024}
                            for i in range(rec["parts"])], state="completed",
                     created_at=rec["created_at"], updated_at=rec["created_at"])
        self.held[d.id] = d
        if rec.get("key"):
            self.keys[rec["key"]] = (rec["digest"], d.id)
        self.next_id = max(self.next_id, int(d.id[1:]))

    def _evict(self) -> None:
        # Bounded retention: the oldest finished downloads go first, so memory stays flat.
        if len(self.held) <= _MAX_DOWNLOADS:
            return
        for did in list(self.held):
            if len(self.held) <= _MAX_DOWNLOADS:
                break
            if self.held[did].state in _TERMINAL:
                del self.held[did]

    def get(self, did: str, **_: Any) -> Response:
        d = self.held.get(did)
        return _json(200, d.view()) if d else _json(404, {"error": f"no download {did}"})

    def parts(self, did: str, **_: Any) -> Response:
        d = self.held.get(did)
        if d is None:
            return _json(404, {"error": f"no download {did}"})
        return _json(200, {"id": did, "parts": d.parts})

    def delete(self, did: str, **_: Any) -> Response:
        d = self.held.pop(did, None)
        if d is None:
            return _json(404, {"error": f"no download {did}"})
        self._persist({"deleted": did})
        d.state = "deleted"
        self._publish("deleted", d)
        return Response(204)

    def action(self, did: str, verb: str, **_: Any) -> Response:
        d = self.held.get(did)
        if d is None:
            return _json(404, {"error": f"no download {did}"})
        allowed = {"pause": {"queued", "downloading"}, "resume": {"paused"},
                   "cancel": {"queued", "downloading", "paused"}}[verb]
        if d.state not in allowed:
            return _json(409, {"error": f"cannot {verb} a download that is {d.state}"})
        d.state = {"pause": "paused", "resume": "queued", "cancel": "cancelled"}[verb]
        d.updated_at = time.time()
        self._publish(verb, d)
        return _json(200, d.view())

    def advance(self) -> None:
        """One tick: queued downloads start, each part of an active one gains 16 KiB."""
        now = time.time()
        for d in list(self.held.values()):
            if d.state == "queued":
                d.state = "downloading"
                d.updated_at = now
                self._publish("started", d)
            elif d.state == "downloading":
                for part in d.parts:
                    part["done"] = min(part["size"], part["done"] + 16 * 1024)
                if all(p["done"] >= p["size"] for p in d.parts):
                    d.state = "completed"
                    d.updated_at = now
                    self._publish("completed", d)
