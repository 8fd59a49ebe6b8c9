"""Triage of real crash output from real Python, Rust, Java and C programs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enduro.triage.report import triage
from tests.conftest import run_cli

PY = """
import sys
def load(user):
    raise KeyError(f"user {user} missing")
def handle(user):
    try:
        load(user)
    except KeyError as exc:
        raise RuntimeError(f"request {user} failed") from exc
def parse(n):
    return int(n)
mode, arg = sys.argv[1], sys.argv[2]
handle(arg) if mode == "handle" else parse(arg)
"""

RUST = """
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let v: Vec<u32> = vec![1, 2, 3];
    if args[1] == "index" {
        let i: usize = args[2].parse().unwrap();
        println!("{}", v[i]);
    } else {
        let n: Option<u32> = None;
        n.expect(&format!("no value for {}", args[2]));
    }
}
"""

JAVA = """
public class Crash {
    static void store(String id) { throw new IllegalStateException("disk full for " + id); }
    static void save(String id) {
        try { store(id); } catch (IllegalStateException e) {
            throw new RuntimeException("save " + id + " failed", e);
        }
    }
    public static void main(String[] args) {
        if (args[0].equals("save")) save(args[1]);
        else System.out.println(args[1].length() / Integer.parseInt(args[2]));
    }
}
"""


def run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    with log.open("a") as fh:
        fh.write(time.strftime("%H:%M:%S ") + "INFO request started\n")
        fh.write(proc.stdout + proc.stderr)


def test_python_crashes_group_by_root_cause(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(PY)
    log = tmp_path / "python.log"
    for args in (["handle", "alice"], ["handle", "bob"], ["handle", "carol"],
                 ["parse", "x1"], ["parse", "x2"]):
        run([sys.executable, "app.py", *args], tmp_path, log)
    result = triage([log])
    crashes = {c["type"]: c for c in result["crashes"]}
    assert set(crashes) == {"RuntimeError", "ValueError"}
    assert crashes["RuntimeError"]["count"] == 3 and crashes["ValueError"]["count"] == 2
    assert "caused by KeyError" in crashes["RuntimeError"]["message"]
    assert crashes["RuntimeError"]["frames"][0].startswith("handle")
    assert result["primary"]["type"] == "RuntimeError"


C_BUGS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) int use_after_free(int i) {
    int *p = malloc(4 * sizeof(int)); free(p); return p[i];
}
__attribute__((noinline)) int overflow(int i) {
    int *p = malloc(4 * sizeof(int)); int v = p[4 + i]; free(p); return v;
}
int main(int argc, char **argv) {
    int i = atoi(argv[2]);
    if (strcmp(argv[1], "uaf") == 0) return use_after_free(i);
    if (strcmp(argv[1], "segv") == 0) { volatile int *q = 0; return *q; }
    return overflow(i);
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_sanitizer_reports_and_signals_group_by_root_cause(tmp_path: Path) -> None:
    (tmp_path / "bugs.c").write_text(C_BUGS)
    for name, flags in (("asan", ["-fsanitize=address"]), ("plain", [])):
        subprocess.run(["gcc", "-g", "-O0", *flags, "bugs.c", "-o", name], cwd=tmp_path,
                       check=True, capture_output=True, timeout=120)
    log = tmp_path / "native.log"
    for args in (["uaf", "0"], ["uaf", "1"], ["overflow", "0"], ["overflow", "1"],
                 ["overflow", "2"]):
        run(["./asan", *args], tmp_path, log, env={"ASAN_OPTIONS": "detect_leaks=0"})
    for _ in range(2):  # a shell reports the signal: "bash: line 1: N Segmentation fault"
        run(["bash", "-c", "./plain segv 0; exit $?"], tmp_path, log)
    crashes = {c["type"]: c for c in triage([log])["crashes"]}
    assert set(crashes) == {"AddressSanitizer:heap-use-after-free",
                            "AddressSanitizer:heap-buffer-overflow", "SIGSEGV"}
    assert crashes["AddressSanitizer:heap-use-after-free"]["count"] == 2
    assert crashes["AddressSanitizer:heap-use-after-free"]["frames"][0] == "use_after_free"
    assert crashes["AddressSanitizer:heap-buffer-overflow"]["count"] == 3
    assert crashes["AddressSanitizer:heap-buffer-overflow"]["frames"][0] == "overflow"
    assert crashes["SIGSEGV"]["count"] == 2 and crashes["SIGSEGV"]["kind"] == "signal"


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_rust_panics_group_by_location(tmp_path: Path) -> None:
    proj = tmp_path / "crasher"
    subprocess.run(["cargo", "new", "-q", "--vcs", "none", str(proj)], check=True,
                   capture_output=True)
    (proj / "src" / "main.rs").write_text(RUST)
    subprocess.run(["cargo", "build", "-q", "--offline"], cwd=proj, check=True,
                   capture_output=True, timeout=300)
    binary = proj / "target" / "debug" / "crasher"
    log = tmp_path / "rust.log"
    for args in (["index", "7"], ["index", "9"], ["none", "a"], ["none", "b"], ["none", "c"]):
        run([str(binary), *args], tmp_path, log, env={"RUST_BACKTRACE": "0"})
    crashes = triage([log])["crashes"]
    assert len(crashes) == 2
    counts = sorted(c["count"] for c in crashes)
    assert counts == [2, 3]
    assert all(c["kind"] == "rust" and "main.rs" in c["frames"][0] for c in crashes)


@pytest.mark.skipif(shutil.which("javac") is None, reason="javac is not installed")
def test_java_exceptions_group_by_root_cause(tmp_path: Path) -> None:
    (tmp_path / "Crash.java").write_text(JAVA)
    subprocess.run(["javac", "Crash.java"], cwd=tmp_path, check=True, capture_output=True,
                   timeout=120)
    log = tmp_path / "java.log"
    for args in (["save", "a1"], ["save", "b2"], ["div", "abc", "0"], ["div", "xy", "0"],
                 ["div", "q", "zero"]):
        run(["java", "-cp", ".", "Crash", *args], tmp_path, log)
    crashes = {c["type"]: c for c in triage([log])["crashes"]}
    assert set(crashes) == {"java.lang.IllegalStateException", "java.lang.ArithmeticException",
                            "java.lang.NumberFormatException"}
    assert crashes["java.lang.IllegalStateException"]["count"] == 2  # the root cause
    assert crashes["java.lang.ArithmeticException"]["count"] == 2


def test_triage_of_a_run_from_the_cli(tmp_path: Path) -> None:
    from tests.helpers.plans import write_plan
    (tmp_path / "app.py").write_text(PY + "\nimport time\ntime.sleep(0.2)\n")
    plan = write_plan(tmp_path, {
        "name": "crashy", "duration": "4s",
        "services": {"api": {"command": [sys.executable, str(tmp_path / "app.py"), "handle",
                                         "dave"], "restart": "always"}}})
    run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    proc = run_cli("triage", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    (crash,) = result["crashes"]
    assert crash["service"] == "api" and crash["type"] == "RuntimeError"
    assert crash["count"] >= 2  # restarted and crashed again; crash logs not double counted
    md = run_cli("triage", str(run_dir))
    assert "Primary issue" in md.stdout and "RuntimeError" in md.stdout
