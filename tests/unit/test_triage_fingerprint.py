"""Crash fingerprints: exception type, message template and first in-app frames. Read from the
recorded output of real programs (tests/data/triage/record.sh) where one exists."""

from __future__ import annotations

from pathlib import Path

from enduro.triage.extract import Crash, extract_crashes, in_app

RECORDED = Path(__file__).resolve().parents[1] / "data" / "triage"


def crashes(name: str) -> list[Crash]:
    return list(extract_crashes((RECORDED / name).read_text().splitlines()))


def by_print(found: list[Crash]) -> dict[str, list[Crash]]:
    groups: dict[str, list[Crash]] = {}
    for c in found:
        groups.setdefault(c.fingerprint, []).append(c)
    return groups


def test_two_rust_panics_on_one_line_are_two_root_causes() -> None:
    port = [c for c in crashes("rust.log") if c.frames[0] == "src/main.rs:3"]
    assert len(port) == 6
    groups = by_print(port)
    assert len(groups) == 2
    messages = sorted(g[0].message for g in groups.values())
    assert messages == ["called `Result::unwrap()` on an `Err` value: ParseIntError "
                        "{ kind: InvalidDigit }", "port must be set"]
    # One of each was printed with RUST_BACKTRACE=1: its std/core frames change nothing.
    assert all(len(g) == 3 for g in groups.values())
    assert all(any(len(c.frames) > 1 for c in g) for g in groups.values())


def test_one_rust_panic_with_different_numbers_stays_one() -> None:
    index = [c for c in crashes("rust.log") if "index out of bounds" in c.message]
    assert [c.message[-1] for c in index] == ["7", "9"]
    assert len(by_print(index)) == 1
    quoted = [c for c in crashes("rust.log") if c.message.startswith("no value for")]
    assert len(quoted) == 3 and len(by_print(quoted)) == 1


def test_rust_backtrace_frames_of_std_and_core_are_not_the_apps() -> None:
    (traced, *_) = [c for c in crashes("rust.log") if len(c.frames) > 1]
    assert "crasher::port" in traced.frames
    assert not in_app("rust", "core::option::expect_failed")
    assert not in_app("rust", "__rustc::rust_begin_unwind")
    assert not in_app("rust", "<alloc::vec::Vec<T> as core::ops::Index<I>>::index")
    assert in_app("rust", "crasher::port")
    assert traced.app_frames == ["src/main.rs:3"]


def test_java_caused_by_keeps_the_root_causes_application_frames() -> None:
    found = crashes("java.log")
    disk = [c for c in found if c.type == "java.lang.IllegalStateException"]
    assert len(disk) == 2 and len(by_print(disk)) == 1  # "disk full for 101" and "... 202"
    # The root cause's own frames, then the enclosing trace's frame its "... 1 more" names.
    assert disk[0].app_frames == ["Crash.store", "Crash.save", "Crash.main"]
    number = [c for c in found if c.type == "java.lang.NumberFormatException"]
    assert len(number) == 3
    # The same type and message template, thrown from two places in the application: the
    # direct one in main, the one a CompletionException wraps in a pool thread's lambda.
    assert sorted(c.app_frames[0] for c in number) == ["Crash.lambda$main$0",
                                                       "Crash.lambda$main$0", "Crash.main"]
    assert len(by_print(number)) == 2
    assert all(not in_app("java", f) for f in ("java.lang.Integer.parseInt",
                                               "jdk.internal.misc.Unsafe.park",
                                               "sun.nio.ch.Net.connect"))


def test_python_fingerprint_skips_the_standard_library_and_packages() -> None:
    def trace(app: str, lib: str, msg: str) -> list[str]:
        return ["Traceback (most recent call last):",
                f'  File "/srv/{app}/handlers.py", line 12, in handle',
                "    json.loads(body)",
                f'  File "{lib}/json/__init__.py", line 346, in loads',
                "    return _default_decoder.decode(s)",
                f"json.decoder.JSONDecodeError: Expecting value: line 1 column {msg} (char 0)"]
    a = list(extract_crashes(trace("a", "/usr/lib/python3.11", "1")))
    b = list(extract_crashes(trace("b", "/opt/venv/lib/python3.12/site-packages", "7")))
    assert a[0].app_frames == b[0].app_frames == ["handle (handlers.py)"]
    assert a[0].fingerprint == b[0].fingerprint
    assert not in_app("python", "loads (<frozen importlib._bootstrap>)")
    assert not in_app("python", "get (/usr/lib/python3/dist-packages/requests/api.py)")
    assert in_app("python", "handle (/srv/app/handlers.py)")


def test_messages_differing_in_words_are_different_root_causes() -> None:
    def panic(msg: str) -> list[str]:
        return ["thread 'main' panicked at src/lib.rs:40:9:", msg]
    one = next(extract_crashes(panic("connection refused to 10.0.0.7:5432")))
    two = next(extract_crashes(panic("connection refused to 10.0.0.9:6543")))
    other = next(extract_crashes(panic("schema version mismatch")))
    assert one.fingerprint == two.fingerprint != other.fingerprint


def test_go_standard_library_and_runtime_frames_are_not_the_apps() -> None:
    assert not in_app("go", "runtime.gopanic")
    assert not in_app("go", "net/http.(*conn).serve")
    assert not in_app("go", "encoding/json.(*decodeState).object")
    assert in_app("go", "main.handler")
    assert in_app("go", "github.com/acme/api/store.(*DB).Get")


def test_sanitizer_interceptors_are_not_the_apps() -> None:
    uaf = [c for c in crashes("native.log") if c.type.endswith("heap-use-after-free")]
    assert uaf[0].app_frames[:2] == ["use_after_free", "main"]
    assert not in_app("sanitizer", "__interceptor_free")
