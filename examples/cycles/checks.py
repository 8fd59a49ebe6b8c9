"""Stands in for a test layer: a little real work, then a check that it came out right."""

import hashlib
import sys

layer = sys.argv[1] if len(sys.argv) > 1 else "fast"
rounds = {"fast": 1_000, "stress": 20_000, "chaos": 5_000}[layer]
digest = b""
for i in range(rounds):
    digest = hashlib.sha256(digest + str(i).encode()).digest()
assert len(digest) == 32
print(f"{layer}: {rounds} rounds ok")
