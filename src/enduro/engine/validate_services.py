"""Checks of what services send: readiness probes' and scrapes' headers (sent as written,
their ``${token:...}`` naming a service whose token is read before them) and scrapes' JSON
paths."""

from __future__ import annotations

from enduro.engine.validate_report import Report
from enduro.net.conditions import json_path_problem
from enduro.plan.models import Plan
from enduro.plan.source import Path_
from enduro.plan.tokens import TOKEN_REF

__all__ = ["ServiceChecks"]


class ServiceChecks:
    """Checks the services of ``plan``."""

    def __init__(self, plan: Plan, report: Report) -> None:
        self.plan = plan
        self.report = report

    def token_refs(self, headers: dict[str, str], at: Path_,
                   reachable: set[str] | None) -> None:
        """``${token:name}`` in a readiness probe's or a scrape's headers names a service with
        a token file that is read before they are sent: ``reachable`` (None: any service)."""
        services = self.plan.services
        for key, value in headers.items():
            for ref in dict.fromkeys(TOKEN_REF.findall(value)):
                service = services.get(ref)
                if service is None or service.token_file is None:
                    self.report.add((*at, key), f"${{token:{ref}}} names a service without a "
                                    "token_file" + ("" if service is not None
                                                    else f" (no service {ref!r})"))
                elif reachable is not None and ref not in reachable:
                    self.report.add((*at, key), f"${{token:{ref}}}: service {ref!r} is not started "
                                    "before this probe; add it to depends_on")

    def scrapes(self) -> None:
        for name, service in self.plan.services.items():
            if service.ready is not None:
                rat: Path_ = ("services", name, "ready", "headers")
                self.report.not_templated(service.ready.headers, rat,
                                          "readiness probe headers are sent as written")
                self.token_refs(service.ready.headers, rat,
                                {name, *_dependencies(self.plan, name)})
            scrape = service.scrape
            if scrape is None:
                continue
            at: Path_ = ("services", name, "scrape")
            self.report.not_templated(scrape.headers, (*at, "headers"),
                                      "scrape headers are sent as written")
            # Scrapes begin once every service is up: any token file will have been read.
            self.token_refs(scrape.headers, (*at, "headers"), None)
            if scrape.json_ is not None:
                for figure, path in scrape.json_.paths.items():
                    problem = json_path_problem(path)
                    if problem is not None:
                        self.report.add((*at, "json", "paths", figure), problem)
                for table, spec in scrape.json_.tables.items():
                    tat: Path_ = (*at, "json", "tables", table)
                    paths: list[tuple[Path_, str]] = [
                        ((*tat, "rows"), spec.rows), ((*tat, "name"), spec.name),
                        *(((*tat, "fields", f), p) for f, p in spec.fields.items())]
                    for where, path in paths:
                        problem = json_path_problem(path)
                        if problem is not None:
                            self.report.add(where, problem)


def _dependencies(plan: Plan, name: str) -> set[str]:
    """The services ``name`` depends on, directly or not (started before it)."""
    found: set[str] = set()
    todo = list(plan.services[name].depends_on)
    while todo:  # bounded: each service is added once
        dep = todo.pop()
        if dep not in found and dep in plan.services:
            found.add(dep)
            todo.extend(plan.services[dep].depends_on)
    return found
