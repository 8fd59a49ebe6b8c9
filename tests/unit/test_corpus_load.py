"""A corpus of bad and hostile plans, each run through ``enduro validate`` in-process.

Every case must exit 2 with one line per problem naming the plan's file and the line of the
mistake (marked ``# <-`` in the text, or given), print no traceback, and return within a few
seconds (alias bombs, 20,000-deep nesting and FIFOs included).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from enduro.base.errors import RunError
from enduro.cli import main
from enduro.plan.models import Service
from enduro.services.stage import stage

MARK = "# <-"
HEAD = "name: corpus\nduration: 5s\n"


def http(request: str = "{name: a}", extra: str = "") -> str:
    """A plan with one HTTP workload; ``extra`` lines go into its http mapping."""
    return (HEAD + "workloads:\n  w:\n    http:\n      base: \"http://127.0.0.1:9\"\n"
            + ("      rate: 5/s\n" if "rate:" not in extra and "stages:" not in extra
               and "connections:" not in extra else "")
            + extra + f"      requests:\n        - {request}\n")


def service(lines: str) -> str:
    """A plan with one managed service ``api``; ``lines`` go into its mapping."""
    return (HEAD + "services:\n  api:\n    command: [\"true\"]\n" + lines
            + "workloads:\n  w:\n    http: {base: \"http://127.0.0.1:9\", rate: 5/s, "
            "requests: [{name: a}]}\n")


def flow(step_lines: str, extra: str = "      rate: 2/s\n") -> str:
    return (HEAD + "workloads:\n  f:\n    flow:\n      base: \"http://127.0.0.1:9\"\n" + extra
            + "      steps:\n" + step_lines)


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    needle: str
    line: int | None = None  # None: the line marked "# <-"; 0: the file only (no line)
    suffix: str = ".yaml"
    setup: Callable[[Path], None] | None = None
    args: tuple[str, ...] = ()


def _fifo(name: str) -> Callable[[Path], None]:
    return lambda d: os.mkfifo(d / name)


def _file(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def _dir(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).mkdir()


BOMB = ("name: bomb\n"
        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]  " + MARK + "\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
        "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
        "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n")

TOML = """\
name = "corpus"
duration = "5s"

[workloads.w.http]
base = "http://127.0.0.1:9"
{rate}
requests = [{{name = "a"}}]
"""

CASES: list[Case] = [
    # --- YAML structure -------------------------------------------------------------------
    Case("dup-top-key", HEAD + "name: again  " + MARK + "\n",
         "duplicate key 'name' (first at line 1)"),
    Case("dup-nested-key", http(extra="      timeout: 5s\n      timeout: 9s  " + MARK + "\n"),
         "duplicate key 'timeout' (first at line 8)"),
    Case("dup-flow-key", http("{name: a, path: /x, name: b}  " + MARK), "duplicate key 'name'"),
    Case("dup-deep-key", http("{name: a, headers: {X-A: '1', X-A: '2'}}  " + MARK),
         "duplicate key 'X-A'"),
    Case("alias-bomb", BOMB, "alias bomb"),
    Case("alias-self", "name: x\nloop: &a [1, *a]  " + MARK + "\n", "contains it"),
    Case("deep-flow-20000", "name: x\nx: " + "[" * 20000 + "\n", "nested more than", line=2),
    Case("deep-block", "name: x\n" + "".join(" " * i + f"k{i}:\n" for i in range(150)),
         "nested more than", line=101),
    Case("not-utf8", b"name: x\nduration: 5s\ndescription: caf\xe9\n", "not UTF-8", line=3),
    Case("nul-char", "name: x\ndescription: a\x00b\n", "not allowed", line=2),
    Case("yaml-syntax", "name: x\nworkloads: {w: [1, 2\nrules: []  " + MARK + "\n",
         "invalid YAML"),
    Case("yaml-tab", "name: x\nworkloads:\n\tw: 1\n", "invalid YAML", line=3),
    Case("empty-plan", "", "empty", line=1),
    Case("comment-only", "# nothing\n", "empty", line=1),
    Case("top-level-list", "- a\n- b\n", "must be a mapping", line=1),
    Case("top-level-scalar", "just text\n", "must be a mapping", line=1),
    Case("unhashable-key", "name: x\n? [a, b]\n: c  " + MARK + "\n", "invalid YAML", line=2),
    Case("python-tag", "name: !!python/object:os.system x\n", "invalid YAML", line=1),
    # --- plan files that are not plans ----------------------------------------------------
    Case("plan-is-fifo", "", "not a regular file", line=0, setup=_fifo("plan.yaml")),
    Case("plan-is-dir", "", "is a directory", line=0, setup=_dir("plan.yaml")),
    Case("plan-too-big", "", "larger than 4 MiB", line=0,
         setup=_file("plan.yaml", b"name: x\n" + b"#" * (5 * 1024 * 1024))),
    # --- TOML -----------------------------------------------------------------------------
    Case("toml-syntax", 'name = "x"\nduration = \n', "invalid TOML", line=2, suffix=".toml"),
    Case("toml-dup", 'name = "x"\nduration = "5s"\nname = "y"\n', "invalid TOML", line=3,
         suffix=".toml"),
    Case("toml-deep", 'name = "x"\nx = ' + "[" * 20000 + "\n", "nested more than", line=2,
         suffix=".toml"),
    Case("toml-nan-rate", TOML.format(rate="rate = nan  " + MARK), "finite", suffix=".toml"),
    Case("toml-inf-rate", TOML.format(rate="rate = inf  " + MARK), "finite", suffix=".toml"),
    Case("toml-zero-rate", TOML.format(rate="rate = 0  " + MARK), "positive", suffix=".toml"),
    Case("toml-bad-utf8", b'name = "caf\xe9"\n', "not UTF-8", line=1, suffix=".toml"),
    # --- numbers --------------------------------------------------------------------------
    Case("rate-zero", http(extra="      rate: 0  " + MARK + "\n"), "must be positive"),
    Case("rate-nan", http(extra="      rate: .nan  " + MARK + "\n"), "finite"),
    Case("rate-inf", http(extra="      rate: .inf  " + MARK + "\n"), "finite"),
    Case("rate-per-zero", http(extra="      rate: 5/0s  " + MARK + "\n"), "must be positive"),
    Case("rate-negative", http(extra="      rate: -5  " + MARK + "\n"), "negative"),
    Case("rate-huge", http(extra="      rate: 50000000/s  " + MARK + "\n"), "at most"),
    Case("duration-inf", "name: x\nduration: .inf\n", "finite", line=2),
    Case("duration-neg-inf", "name: x\nduration: -.inf\n", "negative", line=2),
    Case("duration-1e23d", "name: x\nduration: 1e23d\n", "duration", line=2),
    Case("duration-huge-digits", "name: x\nduration: " + "9" * 30 + "d\n", "30 days", line=2),
    Case("duration-31d", "name: x\nduration: 31d\n", "30 days", line=2),
    Case("duration-zero", "name: x\nduration: 0\n", "positive", line=2),
    Case("duration-word", "name: x\nduration: forever\n", "duration", line=2),
    Case("window-zero", HEAD + "window: 0  " + MARK + "\n", "greater than or equal"),
    Case("window-nan", HEAD + "window: .nan  " + MARK + "\n", "finite"),
    Case("grace-nan", HEAD + "grace: .nan  " + MARK + "\n", "finite"),
    Case("grace-30d", HEAD + "grace: 30d  " + MARK + "\n", "less than or equal to 3600"),
    Case("stop-grace-huge", service("    stop: {grace: 2h}  " + MARK + "\n"),
         "less than or equal to 3600"),
    Case("command-fault-timeout-huge", HEAD + "faults:\n  - {at: 1s, command: {run: 'true', "
         "timeout: 2d}}  " + MARK + "\n", "less than or equal to 3600"),
    Case("ready-interval-tiny", service("    ready: {tcp: '127.0.0.1:1', interval: 1us}  "
                                        + MARK + "\n"), "at least 1ms"),
    Case("weight-inf", http("{name: a, weight: .inf}  " + MARK), "finite"),
    Case("weight-negative", http("{name: a, weight: -1}  " + MARK), "greater than 0"),
    Case("request-timeout-negative", http("{name: a, timeout: -1s}  " + MARK), "duration"),
    Case("workload-timeout-zero", http(extra="      timeout: 0  " + MARK + "\n"), "positive"),
    Case("connections-huge", http(extra="      connections: 10000000  " + MARK + "\n"),
         "less than or equal"),
    Case("connections-zero", http(extra="      connections: 0  " + MARK + "\n"), "greater than 0"),
    Case("max-connections-float", http(extra="      max_connections: 1.5  " + MARK + "\n"),
         "integer"),
    Case("stages-empty", http(extra="      stages: []  " + MARK + "\n"), "stages is empty"),
    Case("stages-all-zero", http(extra="      stages: [{duration: 5s, target: 0}]  " + MARK
                                 + "\n"), "send nothing"),
    Case("stage-target-nan", http(extra="      stages: [{duration: 5s, target: .nan}]  " + MARK
                                  + "\n"), "finite"),
    Case("stage-duration-inf", http(extra="      stages: [{duration: .inf, target: 5}]  "
                                    + MARK + "\n"), "finite"),
    Case("seed-huge", HEAD + "seed: " + "9" * 30 + "  " + MARK + "\n", "less than"),
    Case("expect-status-9999", http("{name: a, expect: {status: 9999}}  " + MARK), "599"),
    Case("python-rate-zero", HEAD + "workloads:\n  p:\n    python: {function: 'm:f', rate: 0}  "
         + MARK + "\n", "positive"),
    Case("sse-clients-zero", HEAD + "workloads:\n  s:\n    sse: {base: 'http://127.0.0.1:9', "
         "clients: 0}  " + MARK + "\n", "greater than 0"),
    Case("sse-clients-huge", HEAD + "workloads:\n  s:\n    sse: {base: 'http://127.0.0.1:9', "
         "clients: 1000000}  " + MARK + "\n", "less than or equal"),
    Case("churn-fraction", HEAD + "workloads:\n  s:\n    sse:\n      base: 'http://127.0.0.1:9'\n"
         "      churn: {every: 5s, fraction: 150%}  " + MARK + "\n", "between 0% and 100%"),
    Case("churn-every-zero", HEAD + "workloads:\n  s:\n    sse:\n      base: 'http://127.0.0.1:9'\n"
         "      churn: {every: 0}  " + MARK + "\n", "positive"),
    Case("observe-sample-zero", HEAD + "observe: {sample: 0}  " + MARK + "\n", "positive"),
    Case("observe-heartbeat-neg", HEAD + "observe: {heartbeat: -1s}  " + MARK + "\n", "duration"),
    Case("ready-interval-zero", service("    ready: {tcp: '127.0.0.1:1', interval: 0}  " + MARK
                                        + "\n"), "positive"),
    Case("ready-timeout-inf", service("    ready: {tcp: '127.0.0.1:1', timeout: .inf}  " + MARK
                                      + "\n"), "finite"),
    Case("ready-status-1000", service("    ready: {http: 'http://127.0.0.1:1', status: 1000}  "
                                      + MARK + "\n"), "599"),
    Case("log-max-negative", service("    log_max: -5  " + MARK + "\n"), "negative"),
    Case("log-max-huge", service("    log_max: 2TiB  " + MARK + "\n"), "at most 1TiB"),
    Case("restart-limit-huge", service("    restart_limit: 100000000  " + MARK + "\n"),
         "less than or equal"),
    Case("scrape-every-zero", service("    scrape: {prometheus: 'http://127.0.0.1:1/m', "
                                      "every: 0}  " + MARK + "\n"), "positive"),
    Case("flow-rate-zero", flow("        - {name: s, request: {path: /}}\n",
                                "      rate: 0  " + MARK + "\n"), "positive"),
    Case("flow-every-zero", flow("        - {name: s, request: {path: /}, until: 'status == 200',"
                                 " every: 0}  " + MARK + "\n"), "positive"),
    Case("flow-attempts-huge", flow("        - {name: s, request: {path: /}, expect_eventually:"
                                    " {status: 200, attempts: 10000000}}  " + MARK + "\n"),
         "less than or equal"),
    Case("branch-weight-inf", flow("        - branch:\n            - {weight: .inf, steps: "
                                   "[{sleep: 1s}]}  " + MARK + "\n"), "finite"),
    Case("burst-rounds-zero", HEAD + "workloads:\n  b:\n    burst: {base: 'http://127.0.0.1:9',"
         " rounds: 0, request: {path: /}}  " + MARK + "\n", "greater than 0"),
    Case("burst-size-huge", HEAD + "workloads:\n  b:\n    burst: {base: 'http://127.0.0.1:9',"
         " size: 1000000, request: {path: /}}  " + MARK + "\n", "less than or equal"),
    Case("fault-count-zero", service("") + "faults:\n  - {at: 1s, restart: api, count: 0}  "
         + MARK + "\n", "greater than 0"),
    Case("fault-for-inf", service("") + "faults:\n  - {at: 1s, pause: api, for: .inf}  " + MARK
         + "\n", "finite"),
    Case("fault-every-zero", service("") + "faults:\n  - {every: 0, restart: api}  " + MARK
         + "\n", "every must be positive"),
    Case("toxicity-over-one", HEAD + "proxies: {p: {listen: '127.0.0.1:1', upstream: "
         "'127.0.0.1:2'}}\nfaults:\n  - {at: 1s, latency: {proxy: p, toxicity: 2}}  " + MARK
         + "\n", "between 0% and 100%"),
    Case("http-fault-status", HEAD + "proxies: {p: {listen: '127.0.0.1:1', upstream: "
         "'127.0.0.1:2', http: true}}\nfaults:\n  - {at: 1s, http: {proxy: p, status: 42}}  "
         + MARK + "\n", "greater than or equal to 100"),
    Case("proxy-port-range", HEAD + "proxies: {p: {listen: '127.0.0.1:99999', upstream: "
         "'127.0.0.1:2'}}  " + MARK + "\n", "host:port"),
    Case("suite-timeout-zero", HEAD + "suite:\n  layers: {fast: {commands: [x], timeout: 0}}  "
         + MARK + "\n", "positive"),
    # --- names ----------------------------------------------------------------------------
    Case("service-dotdot", HEAD + "services:\n  ../../x: {url: 'http://127.0.0.1:1'}  " + MARK
         + "\n", "a name is letters"),
    Case("service-slash", HEAD + "services:\n  a/b: {url: 'http://127.0.0.1:1'}  " + MARK + "\n",
         "a name is letters"),
    Case("service-markup", HEAD + "services:\n  '[/x]': {url: 'http://127.0.0.1:1'}  " + MARK
         + "\n", "got '[/x]'"),
    Case("workload-300", HEAD + "workloads:\n  " + "w" * 300 + ":  " + MARK + "\n    http: "
         "{base: 'http://127.0.0.1:9', rate: 1/s, requests: [{name: a}]}\n", "at most 64"),
    Case("plan-name-300", "name: " + "n" * 300 + "\n", "at most 64", line=1),
    Case("plan-name-dotdot", "name: ../x\n", "a name is letters", line=1),
    Case("op-name-space", http("{name: 'a b'}  " + MARK), "a name is letters"),
    Case("step-name-dot", flow("        - {name: a.b, request: {path: /}}  " + MARK + "\n"),
         "step name"),
    Case("group-name-slash", service("") + "groups: {'a/b': [api]}  " + MARK + "\n",
         "a name is letters"),
    # --- paths that are written, deleted or read ------------------------------------------
    Case("fresh-absolute", service("    stage: {from: '.', fresh: [/etc/passwd]}  " + MARK
                                   + "\n"), "absolute path"),
    Case("fresh-dotdot", service("    stage: {from: '.', fresh: ['../../x']}  " + MARK + "\n"),
         "leaves it"),
    Case("fresh-dot", service("    stage: {from: '.', fresh: ['.']}  " + MARK + "\n"),
         "leaves it"),
    Case("fresh-home", service("    stage: {from: '.', fresh: ['~/x']}  " + MARK + "\n"),
         "absolute path"),
    Case("config-path-dotdot", service("    config: {template: t.j2, path: ../../x}  " + MARK
                                       + "\n"), "leaves it", setup=_file("t.j2", b"x")),
    Case("config-path-absolute", service("    config: {template: t.j2, path: /tmp/x}  " + MARK
                                         + "\n"), "absolute path", setup=_file("t.j2", b"x")),
    Case("token-file-dotdot", service("    token_file: ../api.token  " + MARK + "\n"),
         "leaves it"),
    Case("cwd-missing", service("    cwd: /nonexistent/enduro  " + MARK + "\n"),
         "No such file"),
    Case("cwd-escapes", service("    cwd: ../..  " + MARK + "\n"), "leaves the service"),
    Case("cwd-is-file", service("    cwd: /etc/passwd  " + MARK + "\n"), "not a directory"),
    Case("stage-from-missing", service("    stage: {from: dist}  " + MARK + "\n"),
         "No such file"),
    Case("config-template-missing", service("    config: {template: nope.j2, path: c.toml}  "
                                            + MARK + "\n"), "No such file"),
    Case("config-template-dir", service("    config: {template: tdir, path: c.toml}  " + MARK
                                        + "\n"), "not a regular file", setup=_dir("tdir")),
    Case("compose-file-missing", HEAD + "services:\n  db:\n    compose: {service: db}  " + MARK
         + "\n", "No such file"),
    Case("tls-ca-missing", http(extra="      tls: {ca: missing-ca.pem}  " + MARK + "\n"),
         "No such file"),
    Case("file-dev-zero", http("{name: a, headers: {X-K: '${file:/dev/zero}'}}  " + MARK),
         "not a regular file"),
    Case("file-fifo", http("{name: a, headers: {X-K: '${file:secret.fifo}'}}  " + MARK),
         "not a regular file", setup=_fifo("secret.fifo")),
    Case("file-dir", http("{name: a, headers: {X-K: '${file:sub}'}}  " + MARK),
         "is a directory", setup=_dir("sub")),
    Case("file-big", http("{name: a, headers: {X-K: '${file:big.txt}'}}  " + MARK),
         "larger than 1 MiB", setup=_file("big.txt", b"x" * (2 * 1024 * 1024))),
    Case("file-missing", http("{name: a, headers: {X-K: '${file:nope.txt}'}}  " + MARK),
         "no such file"),
    Case("file-binary", http("{name: a, headers: {X-K: '${file:bin}'}}  " + MARK),
         "not UTF-8", setup=_file("bin", b"\xff\xfe\x00")),
    Case("env-missing", http("{name: a, headers: {X-K: '${env:ENDURO_CORPUS_NOPE}'}}  " + MARK),
         "is not set"),
    # --- request lines and headers --------------------------------------------------------
    Case("header-value-crlf", http("{name: a, headers: {X-A: \"1\\r\\nX-Evil: 2\"}}  " + MARK),
         "control character"),
    Case("header-value-nul", http("{name: a, headers: {X-A: \"1\\0\"}}  " + MARK),
         "control character"),
    Case("header-name-space", http("{name: a, headers: {'X A': '1'}}  " + MARK), "HTTP token"),
    Case("header-name-colon", http("{name: a, headers: {'X:A': '1'}}  " + MARK), "HTTP token"),
    Case("header-value-unicode", http("{name: a, headers: {X-A: \"\\u65e5\"}}  " + MARK),
         "latin-1"),
    Case("workload-header-crlf", http(extra="      headers: {X-A: \"a\\nb\"}  " + MARK + "\n"),
         "control character"),
    Case("path-lf", http("{name: a, path: \"/a\\nGET /admin\"}  " + MARK), "control character"),
    Case("path-unicode", http("{name: a, path: \"/\\u65e5\\u672c\"}  " + MARK), "latin-1"),
    Case("path-space", http("{name: a, path: '/a b'}  " + MARK), "space"),
    Case("path-relative", http("{name: a, path: admin}  " + MARK), "must start with '/'"),
    Case("method-injected", http("{name: a, method: \"GET /x HTTP/1.1\\r\\n\"}  " + MARK),
         "input should be"),
    Case("sse-path-cr", HEAD + "workloads:\n  s:\n    sse: {base: 'http://127.0.0.1:9', "
         "path: \"/s\\r\"}  " + MARK + "\n", "control character"),
    Case("flow-header-crlf", flow("        - {name: s, request: {path: /, headers: {X-A: \"\\r\"}}}"
                                  "  " + MARK + "\n"), "control character"),
    Case("final-header-crlf", HEAD + "final: {base: 'http://127.0.0.1:9', headers: "
         "{X-A: \"\\n\"}}  " + MARK + "\n", "control character"),
    Case("base-crlf", http(extra="      base: \"http://127.0.0.1:9\\r\\nX-Evil: 1\"  " + MARK
                           + "\n").replace('      base: "http://127.0.0.1:9"\n', "", 1),
         "control character"),
    Case("base-space", http(extra="      base: 'http://exa mple:9'  " + MARK + "\n").replace(
        '      base: "http://127.0.0.1:9"\n', "", 1), "space"),
    Case("base-bad-ipv6", http(extra="      base: 'http://[::1'  " + MARK + "\n").replace(
        '      base: "http://127.0.0.1:9"\n', "", 1), "does not parse"),
    Case("base-port-range", http(extra="      base: 'http://127.0.0.1:99999'  " + MARK
                                 + "\n").replace('      base: "http://127.0.0.1:9"\n', "", 1),
         "port out of range"),
    Case("service-url-ftp", HEAD + "services:\n  api: {url: 'ftp://x'}  " + MARK + "\n",
         "http:// or https://"),
    Case("ready-http-crlf", service("    ready: {http: \"http://127.0.0.1:1/\\r\\n\"}  " + MARK
                                    + "\n"), "control character"),
    # --- references -----------------------------------------------------------------------
    Case("workload-unknown-service", HEAD + "services: {api: {url: 'http://127.0.0.1:1'}}\n"
         "workloads:\n  w:\n    http:\n      service: apj  " + MARK + "\n      rate: 1/s\n"
         "      requests: [{name: a}]\n", "names 'apj', which is not a service"),
    Case("depends-on-unknown", service("    depends_on: [api, db]  " + MARK + "\n"),
         "names 'db'"),
    Case("fault-unknown-target", service("") + "faults:\n  - at: 1s\n    kill: nope  " + MARK
         + "\n", "neither a service nor a group"),
    Case("fault-unknown-proxy", HEAD + "faults:\n  - at: 1s\n    latency: {proxy: back}  "
         + MARK + "\n", "proxy 'back' is not in proxies"),
    Case("port-claimed-twice", HEAD + "services:\n  a: {command: x, ports: [8080]}\n"
         "  b: {command: x, ports: [8080]}  " + MARK + "\n", "claimed by services 'a' and 'b'"),
    Case("group-unknown-member", service("") + "groups:\n  g: [api, nope]  " + MARK + "\n",
         "names 'nope'"),
    # --- profiles and --set ---------------------------------------------------------------
    Case("profile-unknown", HEAD + "profiles:  " + MARK + "\n  smoke: {duration: 1s}\n",
         "no profile 'nosuch'", args=("--profile", "nosuch")),
    Case("profile-none-defined", HEAD, "none defined", line=1, args=("--profile", "smoke")),
    Case("profile-bad-value", HEAD + "profiles:\n  smoke: {duration: .inf}  " + MARK + "\n",
         "finite", args=("--profile", "smoke")),
]

SET_CASES: list[tuple[str, list[str], str]] = [
    ("no-equals", ["--set", "duration"], "expected path=value"),
    ("list-by-name", ["--set", "workloads.w.http.requests.x=1"], "is a list"),
    ("index-past-end", ["--set", "workloads.w.http.requests[5]=1"], "past the end"),
    ("value-unparsable", ["--set", "duration=[1,"], "does not parse"),
    ("bad-value", ["--set", "workloads.w.http.rate=0"], "must be positive"),
    ("bad-name", ["--set", "name=../x"], "a name is letters"),
    ("empty-path", ["--set", "=1"], "empty path"),
]


def _expected_line(case: Case, text: str) -> int | None:
    if case.line is not None:
        return case.line or None
    marked = [i for i, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(marked) == 1, f"case {case.id} needs exactly one {MARK!r} marker"
    return marked[0]


def _validate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    start = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    return code, out + err, elapsed


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_plan_is_refused_with_its_line(case: Case, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / f"plan{case.suffix}"
    if case.setup is not None:
        case.setup(tmp_path)
    if not plan.exists():
        plan.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
    text = case.text if isinstance(case.text, str) else ""
    code, output, elapsed = _validate(["validate", str(plan), *case.args], capsys)
    assert "Traceback" not in output
    assert code == 2, output
    line = _expected_line(case, text)
    where = f"{plan}:{line}:" if line else f"{plan}:"
    errors = [x for x in output.splitlines() if x.startswith("error:")]
    assert any(where in x and case.needle.lower() in x.lower() for x in errors), output
    assert elapsed < 5, f"validation took {elapsed:.1f}s"


@pytest.mark.parametrize(("args", "needle"), [c[1:] for c in SET_CASES],
                         ids=[c[0] for c in SET_CASES])
def test_bad_set_is_refused(args: list[str], needle: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(http())
    code, output, _ = _validate(["validate", str(plan), *args], capsys)
    assert "Traceback" not in output
    assert code == 2, output
    assert "--set" in output and needle.lower() in output.lower(), output


def test_corpus_is_large_enough() -> None:
    assert len(CASES) + len(SET_CASES) >= 80


def test_every_problem_of_a_plan_is_reported_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (HEAD + "window: 0\n"
            "workloads:\n  w:\n    http:\n      base: 'http://127.0.0.1:9'\n"
            "      rate: .nan\n"
            "      requests: [{name: a, weight: .inf, path: \"/\\r\"}]\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    code, output, _ = _validate(["validate", str(plan)], capsys)
    assert code == 2
    lines = {x.split(":")[2] for x in output.splitlines() if x.startswith("error:")}
    assert {"3", "8", "9"} <= lines, output


def test_reference_problems_are_all_reported_at_their_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = service("    depends_on: [db]\n") + "faults:\n  - {at: 1s, kill: nope}\n"
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    code, output, _ = _validate(["validate", str(plan)], capsys)
    assert code == 2
    assert f"{plan}:6: services.api.depends_on[0]: names 'db'" in output
    assert f"{plan}:11: faults[0].kill: kill targets 'nope'" in output


def test_duplicate_keys_are_all_reported(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: a\nname: b\nduration: 1s\nx: {k: 1, k: 2}\n")
    code, output, _ = _validate(["validate", str(plan)], capsys)
    assert code == 2
    assert f"{plan}:2: duplicate key 'name' (first at line 1)" in output
    assert f"{plan}:4: duplicate key 'k' (first at line 4)" in output


def test_a_good_plan_still_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "c.j2").write_text("port = 1\n")
    (tmp_path / "ca.pem").write_text("not checked for content here\n")
    text = service("    stage: {from: dist, fresh: [data/identity.keys, cache/]}\n"
                   "    config: {template: c.j2, path: etc/c.toml}\n"
                   "    token_file: data/api.token\n    cwd: work\n"
                   "    ready: {tcp: '127.0.0.1:1'}\n")
    text = text.replace("rate: 5/s, requests: [{name: a}]",
                        "rate: 5/s, tls: {ca: ca.pem}, requests: [{name: a, path: "
                        "\"/items/{{ randint(1, 9) }}?q=é\", headers: {X-A: 'b c'}}]")
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    code, output, _ = _validate(["validate", str(plan)], capsys)
    assert code == 0, output


def _staged_service(fresh: list[str], config_path: str | None = None) -> Service:
    data: dict[str, object] = {"command": ["true"], "stage": {"from": "dist", "fresh": fresh}}
    if config_path is not None:
        data["config"] = {"template": "c.j2", "path": config_path}
    return Service.model_validate(data)


def _symlinked_dist(tmp_path: Path) -> Path:
    """A stage source whose ``data`` is a symlink to a directory outside the run."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "data").symlink_to(outside)
    (tmp_path / "c.j2").write_text("x = 1\n")
    return outside


def test_fresh_through_a_staged_symlink_deletes_nothing_outside(tmp_path: Path) -> None:
    outside = _symlinked_dist(tmp_path)
    service_dir = tmp_path / "run" / "services" / "api"
    service_dir.mkdir(parents=True)
    with pytest.raises(RunError, match="outside the service's directory"):
        stage("api", _staged_service(["data/precious"]), tmp_path, service_dir, {})
    assert (outside / "precious").read_text() == "keep me"


def test_fresh_symlink_itself_is_unlinked_not_followed(tmp_path: Path) -> None:
    outside = _symlinked_dist(tmp_path)
    service_dir = tmp_path / "run" / "services" / "api"
    service_dir.mkdir(parents=True)
    stage("api", _staged_service(["data"]), tmp_path, service_dir, {})
    assert not (service_dir / "data").exists()
    assert (outside / "precious").read_text() == "keep me"


def test_config_written_through_a_staged_symlink_is_refused(tmp_path: Path) -> None:
    outside = _symlinked_dist(tmp_path)
    service_dir = tmp_path / "run" / "services" / "api"
    service_dir.mkdir(parents=True)
    with pytest.raises(RunError, match="outside the service's directory"):
        stage("api", _staged_service([], "data/precious"), tmp_path, service_dir, {})
    assert (outside / "precious").read_text() == "keep me"


def test_run_refuses_a_hostile_plan_before_anything_starts(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(BOMB)
    out = tmp_path / "runs"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "enduro", "run", str(plan), "--out", str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{plan}:6:" in proc.stderr and "alias bomb" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()
    assert time.monotonic() - start < 30


# A value that fits none of a union's members: one problem, at the field's own path, from the
# member of the value's type (a list is judged as a list), with no pydantic tag in the path.
_STATUS_CASES: list[tuple[str, str]] = [
    ("{name: a, expect: {status: 2001}}",
     "expect.status: input should be less than or equal to 599 (got 2001)"),
    ("{name: a, expect: {status: [200, 4040]}}",
     "expect.status[1]: input should be less than or equal to 599 (got 4040)"),
    ("{name: a, expect: {status: [200, abc]}}",
     "expect.status[1]: input should be a valid integer"),
    ("{name: a, expect: {status: {a: 1}}}",
     "expect.status: expected a number, a list or a string (got dict)"),
    ("{name: a, expect: {status: true}}",
     "expect.status: input should be greater than or equal to 100 (got True)"),
]
# (id, the request's mapping or "RULES " and the rules, a piece of the one message)
UNION_CASES: list[tuple[str, str, str]] = [(c[0], c[0], c[1]) for c in _STATUS_CASES] + [
    ("rules-number", "RULES [5]", "rules[0]: expected a string or a mapping (got 5)"),
    ("rules-list", "RULES [[a]]", "rules[0]: expected a string or a mapping (got list)"),
    ("rules-spec-grace", "RULES [{rule: availability > 1%, grace: zz}]",
     "rules[0].grace: expected a duration"),
]


@pytest.mark.parametrize(("request_", "needle"), [c[1:] for c in UNION_CASES],
                         ids=[c[0] for c in UNION_CASES])
def test_union_problems_are_one_message_in_the_plans_words(
        request_: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    if request_.startswith("RULES "):
        plan.write_text(http() + "rules: " + request_.removeprefix("RULES ") + "\n")
    else:
        plan.write_text(http(request_))
    code, output, _ = _validate(["validate", str(plan)], capsys)
    assert code == 2, output
    errors = [x for x in output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, output
    assert needle in errors[0], output
    for tag in ("constrained-", "list[", "function-", "RuleSpec", ".str", ".int"):
        assert tag not in errors[0], output


# `enduro plan` prints the plan a run would use: --duration and --seed are applied to it.
PLAN_FLAG_CASES: list[tuple[list[str], list[str], list[str]]] = [
    ([], ["duration: 5s"], ["seed:"]),
    (["--duration", "90s"], ["duration: 90s"], ["duration: 5s", "seed:"]),
    (["--seed", "7"], ["duration: 5s", "seed: 7"], []),
    (["--duration", "2m", "--seed", "5"], ["duration: 120s", "seed: 5"], ["duration: 5s"]),
]


@pytest.mark.parametrize(("flags", "present", "absent"), PLAN_FLAG_CASES,
                         ids=[" ".join(c[0]) or "none" for c in PLAN_FLAG_CASES])
def test_plan_prints_duration_and_seed_overrides(
        flags: list[str], present: list[str], absent: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(http())
    code = main(["plan", str(plan), *flags])
    output = capsys.readouterr().out
    assert code == 0, output
    printed = output.splitlines()
    for line in present:
        assert line in printed, output
    for line in absent:
        assert not any(x.startswith(line) for x in printed), output
