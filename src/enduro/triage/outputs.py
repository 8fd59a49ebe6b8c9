"""What ``enduro triage`` prints and writes: the markdown of a triage, and with ``--out DIR`` one
summary for all services plus, per service, the error file and summary teams make with grep:

    DIR/summary.md              every service: a table, then the markdown printed to the terminal
    DIR/<service>.summary.md    the service's primary issue, its other root causes, its templates
    DIR/<service>.errors.txt    its crashes and error/warning lines by template, with counts,
                                most frequent first, as `sort | uniq -c | sort -rn` shows them
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from enduro.triage.extract import mask

__all__ = ["errors_text", "markdown", "service_file_stem", "service_markdown", "write_reports"]


def _title(entry: dict[str, Any]) -> str:
    if "type" in entry:
        return f"{entry['type']}: {entry['message'][:200]}"
    return f"`{entry['template'][:200]}` ({entry['count']}x)"


def _crash_section(c: dict[str, Any], *, service: bool) -> list[str]:
    new = " **new**" if c["new"] else ""
    who = f"{c['service']}: " if service else ""
    out = ["", f"### {who}{c['type']}: {c['message'][:200]}{new}",
           f"- {c['count']}x, first {c['first_seen']}, last {c['last_seen']}, "
           f"fingerprint `{c['fingerprint']}` ({c['kind']})"]
    if c["app_frames"]:
        out.append(f"- in-app frames: {' <- '.join(c['app_frames'])}")
    elif c["frames"]:
        out.append(f"- frames: {' <- '.join(c['frames'][:4])}")
    if c["nearest_fault"]:
        out.append(f"- nearest fault: {c['nearest_fault']}")
    return [*out, "", "```", c["example"][:2000], "```"]


def markdown(result: dict[str, Any]) -> str:
    """The whole triage: primary issue, every root cause, the most frequent templates."""
    out = [f"# Triage ({result['lines']:,} lines)", ""]
    if result["primary"]:
        p = result["primary"]
        out += [f"**Primary issue** ({p['service']}): {_title(p)}", ""]
    services = result.get("services", {})
    if len(services) > 1:
        out += ["| service | primary issue | crashes | root causes | error lines |",
                "|---|---|---:|---:|---:|"]
        for name, s in services.items():
            primary = _title(s["primary"]).replace("|", "\\|") if s["primary"] else "-"
            out.append(f"| {name} | {primary[:120]} | {s['crashes']} | {s['root_causes']} | "
                       f"{s['error_lines']} |")
        out.append("")
    out.append(f"## Crashes: {len(result['crashes'])} distinct root cause(s)")
    for c in result["crashes"]:
        out += _crash_section(c, service=True)
    out += ["", f"## Error and warning lines: {len(result['log_groups'])} template(s)", ""]
    for g in result["log_groups"][:30]:
        out.append(f"- {g['count']}x [{g['service']}] `{g['template'][:160]}` "
                   f"(first {g['first_seen']})")
    return "\n".join(out) + "\n"


def service_markdown(result: dict[str, Any], name: str) -> str:
    """One service: its primary issue (its earliest crash), its other root causes, its
    error and warning templates, and the files read."""
    s = result["services"][name]
    crashes = [c for c in result["crashes"] if c["service"] == name]
    logs = [g for g in result["log_groups"] if g["service"] == name]
    out = [f"# {name}: triage ({s['lines']:,} lines)", "",
           f"**Primary issue**: {_title(s['primary']) if s['primary'] else 'none'}", "",
           f"{s['crashes']} crash(es) in {s['root_causes']} root cause(s); "
           f"{s['error_lines']} error and warning line(s) in {s['templates']} template(s).", ""]
    if crashes:
        out.append("## Primary issue")
        out += _crash_section(crashes[0], service=False)
        out += ["", f"## Other root causes: {len(crashes) - 1}"]
        for c in crashes[1:]:
            out += _crash_section(c, service=False)
        out.append("")
    out += [f"## Error and warning lines: {len(logs)} template(s)", ""]
    out += [f"- {g['count']}x `{g['template'][:160]}` (first {g['first_seen']}, "
            f"last {g['last_seen']})" for g in logs]
    out += ["", "## Files read", "", *(f"- {f}" for f in s["files"])]
    return "\n".join(out) + "\n"


def errors_text(result: dict[str, Any], name: str) -> str:
    """One service's crashes and error lines by template with counts, most frequent first."""
    rows = [(c["count"], f"CRASH {c['type']}: {mask(c['message'])} [{c['fingerprint']}]")
            for c in result["crashes"] if c["service"] == name]
    rows += [(g["count"], g["template"]) for g in result["log_groups"]
             if g["service"] == name]
    rows.sort(key=lambda r: (-r[0], r[1]))
    return "".join(f"{count:>7} {text}\n" for count, text in rows)


def service_file_stem(name: str) -> str:
    """A service's name as a file name (nothing that would leave DIR or hide the file)."""
    return re.sub(r"[^\w.-]", "_", name).lstrip(".") or "_"


def write_reports(result: dict[str, Any], out: Path) -> list[Path]:
    """Write DIR/summary.md and each service's summary and error files; return them."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.md"]
    written[0].write_text(markdown(result))
    for name in result["services"]:
        stem = service_file_stem(name)
        for path, text in ((out / f"{stem}.summary.md", service_markdown(result, name)),
                           (out / f"{stem}.errors.txt", errors_text(result, name))):
            path.write_text(text)
            written.append(path)
    return written
