"""``enduro collect``: a tarball of a run directory with secrets redacted."""

from __future__ import annotations

import io
import re
import tarfile
import time
from pathlib import Path

import yaml

__all__ = ["collect_run", "secrets_of"]

REDACTED = "<redacted>"
_BEARER = re.compile(rb"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{4,}")
_AUTH_HEADER = re.compile(rb"(?i)((?:authorization|x-api-key|api-key|token)\s*[:=]\s*)"
                          rb"(?!bearer)[^\s\r\n\"',}]{4,}")
_FILE_REF = re.compile(r"\$\{file:([^}]+)\}")


def secrets_of(run_dir: Path, plan_dir: Path | None = None) -> tuple[set[bytes], set[Path]]:
    """Secret values to scrub, and files whose whole content is a secret (token files)."""
    values: set[bytes] = set()
    files: set[Path] = set()
    try:
        plan = yaml.safe_load((run_dir / "plan.resolved.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        plan = {}
    for name, svc in (plan.get("services") or {}).items():
        if isinstance(svc, dict) and isinstance(svc.get("token_file"), str):
            path = run_dir / "services" / name / svc["token_file"]
            files.add(path)
            try:
                token = path.read_bytes().strip()
            except OSError:
                continue
            if token:
                values.add(token)
    if plan_dir is not None:
        text = yaml.safe_dump(plan)
        for ref in _FILE_REF.findall(text):
            path = Path(ref) if Path(ref).is_absolute() else plan_dir / ref
            try:
                secret = path.read_bytes().strip()
            except OSError:
                continue
            if len(secret) >= 4:
                values.add(secret)
    return values, files


def redact(data: bytes, values: set[bytes]) -> bytes:
    for value in sorted(values, key=len, reverse=True):
        data = data.replace(value, REDACTED.encode())
    data = _BEARER.sub(rb"\1" + REDACTED.encode(), data)
    return _AUTH_HEADER.sub(rb"\1" + REDACTED.encode(), data)


def collect_run(run_dir: Path, out_dir: Path, *, plan_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<run id>.tar.gz`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    values, secret_files = secrets_of(run_dir, plan_dir)
    secret_files = {p.resolve() for p in secret_files}
    target = out_dir / f"{run_dir.name}.tar.gz"
    tmp = target.with_name(target.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(run_dir.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            arcname = f"{run_dir.name}/{path.relative_to(run_dir)}"
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if path.resolve() in secret_files:
                data = (REDACTED + "\n").encode()
            elif b"\0" not in data[:8192]:
                data = redact(data, values)
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mtime = int(path.stat().st_mtime or time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(target)
    return target
