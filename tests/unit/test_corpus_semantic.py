"""Bad plans that load as YAML and pass the models, but that a run would trip over: each must
be refused by ``enduro validate`` (exit 2) with its file:line, a message a person can act on,
and no traceback. Good plans (the bundled ones among them) must still pass.

Each bad plan marks the line the problem must be reported at with ``# <-``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from enduro.cli import main

HEAD = """\
name: t
duration: 5s
services:
  api: {url: "http://127.0.0.1:9"}
  proc: {command: ["sleep", "100"]}
"""


def http(request: str, *, extra: str = "") -> str:
    """A plan with one http workload whose one request has ``request`` (YAML lines at the
    request's indentation)."""
    return HEAD + f"""\
workloads:
  w:
    http:
      base: http://127.0.0.1:9
      rate: 1/s
{extra}      requests:
        - name: r
{request}"""


def flow(steps: str, *, extra: str = "") -> str:
    return HEAD + f"""\
workloads:
  f:
    flow:
      service: api
      connections: 1
{extra}      steps:
{steps}"""


def burst(body: str) -> str:
    return HEAD + f"""\
workloads:
  b:
    burst:
      service: api
      size: 2
{body}"""


def rules(*lines: str, extra: str = "") -> str:
    return http("          path: /x\n", extra="") + extra + "rules:\n" + "".join(
        f"  - {line}\n" for line in lines)


def python(function: str) -> str:
    return HEAD + f"""\
workloads:
  p:
    python:
      function: "{function}"   # <-
      rate: 1/s
"""


OPS_SYNTAX = "import asyncio\n\nasync def op(ctx)\n    await asyncio.sleep(0)\n"
OPS_RAISES = "import json\n\nSETTINGS = json.loads('{not json')\n\nasync def op(ctx): ...\n"
OPS_SYNC = "def op(ctx):\n    return None\n"
OPS_ARITY0 = "async def op():\n    return None\n"
OPS_OK = "async def op(ctx):\n    return None\n\nasync def step(client, ctx):\n    return None\n"

# (id, plan text, extra files, a piece of the message)
CASES: list[tuple[str, str, dict[str, str], str]] = [
    # -- http request templates ----------------------------------------------------------
    ("http-unknown-placeholder", http('          path: "/x/{{nosuch}}"  # <-\n'), {},
     "unknown placeholder {{nosuch}}"),
    ("http-randint-reversed", http('          path: "/x/{{randint(5,1)}}"  # <-\n'), {},
     "the first bound must not exceed the second"),
    ("http-randint-one-arg", http('          path: "/x/{{randint(5)}}"  # <-\n'), {},
     "randint takes two integers"),
    ("http-randint-no-args", http('          path: "/x/{{randint}}"  # <-\n'), {},
     "randint needs arguments"),
    ("http-seq-with-args", http('          path: "/x/{{seq(3)}}"  # <-\n'), {},
     "takes no arguments"),
    ("http-choice-empty", http('          path: "/x/{{choice()}}"  # <-\n'), {},
     "choice needs arguments"),
    ("http-choice-empty-option", http('          path: "/x/{{choice(a||b)}}"  # <-\n'), {},
     "an empty alternative"),
    ("http-uppercase-placeholder", http('          path: "/x/{{Seq}}"  # <-\n'), {},
     "{{Seq}} is not a placeholder"),
    ("http-unclosed-call", http('          path: "/x/{{randint(1,2}}"  # <-\n'), {},
     "is not a placeholder"),
    ("http-workload-header", http("          path: /x\n",
                                  extra='      headers: {X-Id: "{{token}}"}  # <-\n'), {},
     "unknown placeholder {{token}}"),
    ("http-query-value", http('          query: {page: "{{nosuch}}"}  # <-\n'), {},
     "unknown placeholder"),
    ("http-json-nested", http('          method: POST\n          json:\n'
                              '            items: ["{{nosuch}}"]  # <-\n'), {},
     "unknown placeholder"),
    ("http-body-vu", http('          method: POST\n          body: "n={{vu}}"  # <-\n'), {},
     "unknown placeholder {{vu}}"),
    ("http-canary-not-generated", http('          headers: {X-C: "{{canary}}"}  # <-\n'), {},
     "unknown placeholder {{canary}}"),
    ("http-canary-out-of-range",
     http('          headers: {X-C: "{{canary3}}"}  # <-\n') + "canaries: {generate: 2}\n",
     {}, "unknown placeholder {{canary3}}"),
    # -- http expectations ---------------------------------------------------------------
    ("expect-json-path-no-dollar", http("          expect:\n            json:\n"
                                        "              a.b: 1  # <-\n"), {},
     "must start with '$'"),
    ("expect-json-path-garbage", http("          expect:\n            json:\n"
                                      '              "$.a b": 1  # <-\n'), {},
     "cannot read ' b'"),
    ("expect-that-in-scalar", http("          expect:\n            that:\n"
                                   '              - "$.x in 5"  # <-\n'), {},
     "'in' takes a list"),
    ("expect-that-status-text", http("          expect:\n            that:\n"
                                     "              - 'status == \"ok\"'  # <-\n"), {},
     "status compares with a number"),
    ("expect-that-double-dot", http("          expect:\n            that:\n"
                                    '              - "$..x == 1"  # <-\n'), {},
     "cannot read"),
    ("expect-regex-bytes-only", http("          expect:\n"
                                     "            regex: '\\N{DIGIT ONE}'  # <-\n"), {},
     "regex does not compile"),
    ("expect-contains-template", http("          expect:\n"
                                      '            contains: "{{seq}}"  # <-\n'), {},
     "is not filled in here"),
    # -- sse -----------------------------------------------------------------------------
    ("sse-path-template", HEAD + """\
workloads:
  s:
    sse:
      service: api
      path: "/events/{{seq}}"  # <-
""", {}, "SSE requests are sent as written"),
    ("sse-ts-path", HEAD + """\
workloads:
  s:
    sse:
      service: api
      ts_path: ts  # <-
""", {}, "must start with '$'"),
    # -- flows ---------------------------------------------------------------------------
    ("flow-unknown-var", flow("""\
        - name: a
          request: {path: "/x/{{id}}"}  # <-
"""), {}, "no variable 'id' in scope"),
    ("flow-capture-used-before-defined", flow("""\
        - name: a
          request: {path: "/x/{{id}}"}  # <-
        - name: b
          request: {path: /y}
          capture: {id: $.id}
"""), {}, "no variable 'id'"),
    ("flow-capture-in-own-expect", flow("""\
        - name: a
          request: {path: /y}
          expect:
            json: {"$.id": "{{id}}"}  # <-
          capture: {id: $.id}
"""), {}, "no variable 'id'"),
    ("flow-var-typo", flow("""\
        - name: a
          request: {path: /y}
          capture: {order_id: $.id}
        - name: b
          request: {path: "/x/{{orderid}}"}  # <-
"""), {}, "did you mean 'order_id'?"),
    ("flow-capture-in-one-branch-only", flow("""\
        - branch:
            - steps:
                - name: a
                  request: {path: /a}
                  capture: {id: $.id}
            - steps:
                - name: b
                  request: {path: /b}
        - name: c
          request: {path: "/x/{{id}}"}  # <-
"""), {}, "no variable 'id'"),
    ("flow-capture-not-a-path", flow("""\
        - name: a
          request: {path: /y}
          capture:
            id: id  # <-
"""), {}, "expected status, header:NAME or a JSON path"),
    ("flow-capture-bad-index", flow("""\
        - name: a
          request: {path: /y}
          capture:
            id: "$.items[x]"  # <-
"""), {}, "cannot read '[x]'"),
    ("flow-capture-empty-header", flow("""\
        - name: a
          request: {path: /y}
          capture:
            where: "header:"  # <-
"""), {}, "header: needs a name"),
    ("flow-until-in-scalar", flow("""\
        - name: a
          request: {path: /y}
          until: "$.state in done"  # <-
"""), {}, "'in' takes a list"),
    ("flow-until-template", flow("""\
        - name: a
          request: {path: /y}
          capture: {id: $.id}
        - name: b
          request: {path: /z}
          until: '$.id == "{{idd}}"'  # <-
"""), {}, "no variable 'idd' in scope here (did you mean 'id'?)"),
    ("flow-step-unknown-service", flow("""\
        - name: a
          request:
            path: /y
            service: zzz  # <-
"""), {}, "no service 'zzz'"),
    ("flow-step-service-without-url", flow("""\
        - name: a
          request:
            path: /y
            service: proc  # <-
"""), {}, "has no 'url'"),
    ("flow-randint-reversed", flow("""\
        - name: a
          request: {path: "/x/{{randint(9,2)}}"}  # <-
"""), {}, "the first bound must not exceed the second"),
    ("flow-vars-are-not-templates", flow("""\
        - name: a
          request: {path: "/x/{{key}}"}
""", extra='      vars: {key: "{{uuid}}"}  # <-\n'), {}, "flow vars are values"),
    ("flow-headers-not-templated", flow("""\
        - name: a
          request: {path: /x}
""", extra='      headers: {X-Seq: "{{seq}}"}  # <-\n'), {}, "sent as written"),
    ("flow-eventually-json-path", flow("""\
        - name: a
          request: {path: /x}
          expect_eventually:
            json: {"state": done}  # <-
"""), {}, "must start with '$'"),
    ("flow-history-value-path", flow("""\
        - name: a
          request: {path: /x}
          history:
            f: read
            key: k
            value: "$.a b"  # <-
"""), {}, "cannot read"),
    ("flow-history-key-unknown", flow("""\
        - name: a
          request: {path: /x}
          history:
            f: write
            key: "{{nokey}}"  # <-
"""), {}, "no variable 'nokey'"),
    ("flow-python-step-arity", flow("""\
        - name: a
          python: "ops:op"  # <-
"""), {"ops.py": OPS_OK}, "it is called as op(client, ctx)"),
    # -- bursts --------------------------------------------------------------------------
    ("burst-var-uses-later-var", burst("""\
      vars:
        a: "{{b}}"  # <-
        b: "{{uuid}}"
      request: {method: POST, path: /x}
"""), {}, "no variable 'b'"),
    ("burst-request-unknown", burst("""\
      request: {method: POST, path: "/x/{{nosuch}}"}  # <-
"""), {}, "no variable 'nosuch'"),
    ("burst-after-check-in", burst("""\
      request: {method: POST, path: /x}
      after:
        - name: one
          http: {path: /count}
          check: "$.total in 1"  # <-
"""), {}, "'in' takes a list"),
    ("burst-after-check-template", burst("""\
      request: {method: POST, path: /x}
      after:
        - name: one
          http: {path: /count}
          check: "$.total == {{nosuch}}"  # <-
"""), {}, "no variable 'nosuch'"),
    ("burst-after-unknown-service", burst("""\
      request: {method: POST, path: /x}
      after:
        - name: one
          http:
            path: /count
            service: zzz  # <-
          check: "$.total == 1"
"""), {}, "no service 'zzz'"),
    # -- python functions ----------------------------------------------------------------
    ("python-no-module", python("nosuch_module_xyz:op"), {}, "no module 'nosuch_module_xyz'"),
    ("python-relative-module", python(".x:op"), {}, "is not a module name"),
    ("python-not-async", python("ops:op"), {"ops.py": OPS_SYNC},
     "must be a coroutine function"),
    ("python-wrong-arity", python("ops:op"), {"ops.py": OPS_ARITY0},
     "it is called as op(ctx)"),
    ("python-missing-attr", python("ops:nope"), {"ops.py": OPS_OK}, "has no 'nope'"),
    # -- final phase, scrapes ------------------------------------------------------------
    ("final-unknown-service", http("          path: /x\n") + """\
final:
  service: zzz  # <-
  steps:
    - name: read
      request: {path: /x}
""", {}, "no service 'zzz'"),
    ("final-steps-without-target", http("          path: /x\n") + """\
final:
  steps:  # <-
    - name: read
      request: {path: /x}
""", {}, "would be skipped"),
    ("final-step-unknown-var", http("          path: /x\n") + """\
final:
  service: api
  steps:
    - name: read
      request: {path: "/x/{{id}}"}  # <-
""", {}, "no variable 'id'"),
    ("scrape-json-path", HEAD.replace(
        '  api: {url: "http://127.0.0.1:9"}\n',
        '  api:\n    url: "http://127.0.0.1:9"\n    scrape:\n      json:\n'
        '        url: "http://127.0.0.1:9/stats"\n        paths:\n'
        '          depth: queue.depth  # <-\n'), {}, "must start with '$'"),
    # -- rules ---------------------------------------------------------------------------
    ("rule-class-wrong-case", rules('"errors{class=5XX} == 0"  # <-'), {},
     "no error class '5XX' (did you mean '5xx'?)"),
    ("rule-class-unknown", rules('"errors{class=boom} == 0"  # <-'), {},
     "no error class 'boom'"),
    ("rule-label-does-not-apply", rules('"errors{service=zzz} == 0"  # <-'), {},
     "label 'service' does not apply to errors"),
    ("rule-unknown-service", rules('"max(rss{service=zzz}) < 100MB"  # <-'), {},
     "no service 'zzz'"),
    ("rule-service-not-a-process", rules('"max(rss{service=api}) < 100MB"  # <-'), {},
     "is not a process enduro starts"),
    ("rule-leak-unknown-service", rules('"leak(rss{service=apii}) == false"  # <-'), {},
     "did you mean 'api'?"),
    ("rule-phase-typo", rules('"error_rate{phase=choas} < 1%"  # <-'), {},
     "no phase 'choas' (did you mean 'chaos'?)"),
    ("rule-trend-bad-size", rules('"leak(rss{service=proc, min=10XB}) == false"  # <-'), {},
     "min=10XB is not a size"),
    ("rule-fault-kind-absent", rules('"max(recover_s{kind=kill}) < 5s"  # <-'), {},
     "no fault of kind 'kill'"),
    ("rule-resource-whose", rules('"max(rss) < 100MB"  # <-'), {}, "say whose"),
    ("rule-scrape-no-section", rules('"max(scrape{service=proc, metric=x}) < 1"  # <-'), {},
     "has no 'scrape' section"),
    ("rule-unknown-op", rules('"p95(latency{op=rr}) < 1s"  # <-'), {}, "no op named 'rr'"),
    ("rule-over-zero", rules('"availability >= 99% over 0s"  # <-'), {},
     "must be a positive duration"),
    ("rule-long-form", rules("rule: \"p95(latency{op=nope}) < 1s\"  # <-"), {},
     "no op named 'nope'"),
    ("rule-drift-max", rules('"drift(max(latency{op=r})) < 10%"  # <-'), {},
     "reads p50, p95 or p99"),
    ("rule-target-on-latency", rules('"p95(latency{target=generator}) < 1s"  # <-'), {},
     "label 'target' does not apply"),
    ("rule-unknown-metric", rules('"p95(latncy) < 1s"  # <-'), {}, "unknown metric"),
    ("rule-abort-on-fail-judged-at-end",
     rules('{rule: "leak(rss{service=proc}) == false", abort_on_fail: true}  # <-'), {},
     "abort_on_fail would never stop the run"),
    ("abort-if-class-typo", rules('"availability > 0%"', extra="abort_if:\n"
                                  '  - "errors{class=5XX} > 3 for 10s"  # <-\n'), {},
     "did you mean '5xx'?"),
    ("abort-if-no-for", rules('"availability > 0%"', extra="abort_if:\n"
                              '  - "availability < 50%"  # <-\n'), {},
     "expected CONDITION for DURATION"),
]


def _validate(tmp_path: Path, text: str, files: dict[str, str],
              capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    code = main(["validate", str(plan)])
    captured = capsys.readouterr()
    return code, captured.err + captured.out, plan


@pytest.mark.parametrize(("text", "files", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_plan_is_refused_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         text: str, files: dict[str, str],
                                         message: str) -> None:
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if "# <-" in line]
    assert len(marked) == 1, "a case marks exactly one line"
    code, out, plan = _validate(tmp_path, text, files, capsys)
    assert code == 2, out
    assert "Traceback" not in out
    assert f"{plan}:{marked[0]}:" in out, out
    assert message in " ".join(out.split()), out


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert len({c[0] for c in CASES}) == len(CASES)


def test_python_module_errors_name_the_module_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _validate(tmp_path, python("ops:op"), {"ops.py": OPS_SYNTAX}, capsys)
    assert code == 2 and "Traceback" not in out
    assert f"{tmp_path / 'ops.py'}:3:" in out and "does not compile" in out, out
    code, out, _ = _validate(tmp_path, python("ops:op"), {"ops.py": OPS_RAISES}, capsys)
    assert code == 2 and "Traceback" not in out
    assert f"{tmp_path / 'ops.py'}:3:" in out and "JSONDecodeError" in out, out


def test_rule_problems_come_with_the_other_problems(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = http('          path: "/x/{{nosuch}}"\n') + 'rules:\n  - "errors{class=5XX} == 0"\n'
    code, out, plan = _validate(tmp_path, text, {}, capsys)
    assert code == 2
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, out
    assert f"{plan}:13:" in errors[0] and f"{plan}:15:" in errors[1], out


GOOD = HEAD.replace('  proc: {command: ["sleep", "100"]}\n', """\
  proc:
    command: ["sleep", "100"]
    scrape:
      every: 1s
      json: {url: "http://127.0.0.1:9/stats", paths: {depth: $.queue.depth}}
""") + """\
canaries: {generate: 2}
workloads:
  w:
    http:
      base: http://127.0.0.1:9
      rate: 1/s
      headers: {Idempotency-Key: "{{uuid}}", X-C: "{{canary2}}"}
      requests:
        - name: r
          method: POST
          path: "/x/{{randint(1,9)}}/{{ seq }}"
          query: {n: "{{choice(a|b)}}"}
          json: {c: "{{canary}}", n: 3}
          expect: {status: 2xx, json: {"$.items[0].id": 1, "$.items.length": 2},
                   that: ['$.state in ["a", "b"]', "status == 200"], regex: "d.ne"}
  f:
    flow:
      service: api
      connections: 1
      vars: {tenant: acme}
      steps:
        - name: create
          request: {method: POST, path: "/t/{{tenant}}/{{vu}}", json: {k: "{{canary}}"}}
          capture: {id: $.id, where: "header:Location", code: status}
        - branch:
            - steps:
                - name: pause
                  request: {path: "/x/{{id}}/pause"}
                  capture: {again: $.id}
            - steps:
                - name: cancel
                  request: {path: "/x/{{id}}/cancel"}
                  capture: {again: $.id}
        - name: settled
          request: {path: "/s/{{again}}", headers: {X-W: "{{where}}"}}
          until: '$.state in ["done"]'
        - name: hook
          python: "ops:step"
        - name: after-hook
          request: {path: "/x/{{set_by_python}}"}
          expect_eventually: {json: {"$.id": "{{id}}"}, attempts: 3}
          history: {f: read, key: "{{id}}", value: $.items}
  b:
    burst:
      service: api
      size: 2
      vars: {key: "{{uuid}}", again: "{{key}}-{{round}}"}
      request: {method: POST, path: "/x/{{prefix}}{{again}}", headers: {K: "{{key}}"}}
      history: {f: create, key: "{{key}}", value: $.id}
      after:
        - name: one
          http: {path: /count, query: {k: "{{key}}"}}
          check: "$.total == {{round}}"
  p:
    python: {function: "ops:op", rate: 1/s}
faults:
  - {at: 1s, kill: proc}
final:
  service: api
  steps:
    - name: read
      request: {path: /all}
      capture: {n: $.total}
    - name: again
      request: {path: "/all/{{n}}"}
rules:
  - "errors{class=5xx} == 0"
  - "errors{class=step:create} == 0"
  - "errors{class=post:one, op=b:round} == 0"
  - "errors{class=error:ValueError} == 0"
  - "error_rate{phase=chaos} < 5%"
  - "p95(latency{op=f.settled}) < 1s"
  - "leak(rss{service=proc, min=10MB}) == false"
  - "max(fds{target=generator}) < 1000"
  - "max(loop_lag{target=generator}) < 100ms"
  - "max(scrape{service=proc, metric=depth}) < 10"
  - "max(recover_s{kind=kill}) < 5s"
  - "drift(p95(latency{op=r})) < 50%"
  - {rule: "availability >= 90%", abort_on_fail: true, grace: 5s}
abort_if:
  - "errors{class=timeout} > 10 for 5s"
"""


def test_a_plan_using_every_feature_validates(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _validate(tmp_path, GOOD, {"ops.py": OPS_OK}, capsys)
    assert code == 0, out
    assert out.startswith("ok:")


REPO = Path(__file__).resolve().parents[2]
SHIPPED = [REPO / "examples" / "fullstack" / "plan.yaml",
           *(REPO / "examples" / p for p in ("soak/plan.yaml", "cycles/plan.yaml",
                                             "supervision/compose.yaml",
                                             "supervision/systemd.yaml")),
           *sorted((REPO / "src" / "enduro" / "demo" / "plans").glob("*.yaml"))]


@pytest.mark.parametrize("shipped", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_plan_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch, shipped: Path) -> None:
    # The demo plans are copied beside a token, as `enduro demo` does.
    if shipped.parent.name == "plans":
        target = tmp_path / shipped.name
        shutil.copy(shipped, target)
        (tmp_path / "demo.token").write_text("t0ken\n")
        shipped = target
    for name in ("ENDURO_DEMO_URL", "ENDURO_DEMO_PORT", "ENDURO_DEMO_DEFECT_FLAG"):
        monkeypatch.delenv(name, raising=False)
    code = main(["validate", str(shipped)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert os.fspath(shipped) in out.out


# (id, plan text, the problems in the order they must be printed, as (line, piece of message),
# pieces that must not appear). A schema problem does not hide the rule problems of a plan
# whose failing sections define no names; when they do (a workload), rule problems that could
# be artefacts of the missing section are not guessed at.
TOGETHER: list[tuple[str, str, list[tuple[int, str]], list[str]]] = [
    ("top-level-typo-and-rule-op",
     "name: t\nduraton: 5m\n" + rules('"p95(latency{op=rr1}) < 1s"').split("\n", 2)[2],
     [(2, "unknown key 'duraton' (did you mean 'duration'?)"),
      (15, "no op named 'rr1'")], []),
    ("bad-duration-value-and-rule-class",
     rules('"errors{class=5XX} == 0"').replace("duration: 5s", "duration: soon"),
     [(2, "duration"), (15, "no error class '5XX'")], []),
    ("bad-rule-entry-and-template",
     http('          path: "/x/{{nosuch}}"\n') + "rules:\n  - {rule: availability > 1%, "
     "grace: zz}\n",
     [(13, "unknown placeholder {{nosuch}}"), (15, "grace")], []),
    ("unknown-key-and-reference",
     HEAD + "colour: red\nworkloads:\n  s:\n    sse: {service: zzz}\n"
     + 'rules:\n  - "p95(latency{op=s:event}) < 1s"\n',
     [(6, "unknown key 'colour'"), (9, "names 'zzz', which is not a service")], []),
    ("workload-schema-error-hides-no-crash",
     http("          path: /x\n", extra="      connections: many\n")
     + 'rules:\n  - "p95(latency{op=nope}) < 1s"\n',
     [(11, "connections")], ["no op named"]),
]


@pytest.mark.parametrize(("text", "expected", "absent"), [c[1:] for c in TOGETHER],
                         ids=[c[0] for c in TOGETHER])
def test_schema_and_rule_problems_come_out_together_in_line_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
        expected: list[tuple[int, str]], absent: list[str]) -> None:
    code, out, plan = _validate(tmp_path, text, {}, capsys)
    assert code == 2, out
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == len(expected), out
    for line, (number, piece) in zip(errors, expected, strict=True):
        assert f"{plan}:{number}:" in line and piece in line, out
    for piece in absent:
        assert piece not in out, out
