"""A throwaway certificate authority made with the ``openssl`` command (scripts/test.sh
installs it): a CA, a server certificate for 127.0.0.1 and the name ``api.test``, and a client
certificate, all valid for two days."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> Path:
    """Write ca.pem/ca.key, server.pem/server.key and client.pem/client.key into ``d``."""
    assert shutil.which("openssl"), "openssl is needed (apt-get install -y openssl)"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=enduro test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:api.test\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                *(["-extfile", "san.ext"] if name == "server" else []), cwd=d)
    return d
