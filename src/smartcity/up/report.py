"""What the city tells its user: progress while it starts, what happens to its processes,
where everything listens, and the same as JSON in ``city.json`` for scripts and tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from smartcity.runtime.nats_auth.render import credentials_path
from smartcity.up.child import Child
from smartcity.up.faults import FaultTarget
from smartcity.up.plan import Layout, Site
from smartcity.up.ports import Endpoints
from smartcity.up.process_group import describe_status
from smartcity.up.processes import SIM
from smartcity.up.seed import Account
from smartcity.up.supervisor import ChildEvent, EventKind

__all__ = ["CityReport", "Reporter"]


@dataclass
class CityReport:
    """What ``city.json`` holds, filled in as the city starts."""

    layout: Layout
    endpoints: Endpoints
    sites: Sequence[Site] = ()
    agents: dict[str, list[str]] = field(default_factory=dict)
    """Agent id to its profile files."""
    faults: Sequence[FaultTarget] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    """Process name to why it does not run."""
    ready_seconds: float | None = None
    login: Mapping[str, str] = field(default_factory=dict)

    def document(self, children: Mapping[str, Child], *, running: bool) -> dict[str, Any]:
        layout, endpoints = self.layout, self.endpoints

        def process(name: str) -> dict[str, Any]:
            child = children.get(name)
            entry: dict[str, Any] = {"log": str(layout.logs / f"{name}.log")}
            if child is None:
                entry["skipped"] = self.skipped.get(name, "not started")
                return entry
            entry.update(pid=child.pid, ready=child.ready, starts=child.starts)
            return entry

        def credentials(user: str) -> str:
            return str(credentials_path(layout.nats_auth, user))

        services = {
            name: {
                "grpc": endpoints.address(name),
                "config": str(layout.config / f"{name}.yaml"),
                "nats_credentials": credentials(name),
                **process(name),
            }
            for name in ("identity", "records", "monitoring", "alerts")
        }
        services["identity"]["jwks"] = f"{endpoints.identity_http_url}/.well-known/jwks.json"
        console: dict[str, Any] = process("console")
        if "console" in endpoints.ports:
            console["url"] = endpoints.console_url
        by_site = {target.site: target for target in self.faults}
        # Every site's simulator runs in the one process ``sim``, listed once.
        sim: dict[str, Any] | None = None
        if self.sites:
            sim = {"plan": str(layout.config / f"{SIM}.yaml"), **process(SIM)}
        simulators = {}
        for site in self.sites:
            entry: dict[str, Any] = {"protocol": site.simulator, "process": SIM}
            entry["port"] = endpoints.sim_port(site)
            target = by_site.get(site.id)
            if target is not None:
                entry["fault_endpoint"] = target.endpoint
                entry["fault"] = target.fault
                if target.cert is not None and target.key is not None:
                    entry.update(cert=str(target.cert), key=str(target.key))
            simulators[site.id] = entry
        agents = {
            agent: {
                "profiles": files,
                "nats_credentials": credentials(f"agent-{agent}"),
                "buffer_dir": str(layout.agent_dir(agent) / "buffer"),
                **process(f"agent-{agent}"),
            }
            for agent, files in self.agents.items()
        }
        return {
            "state": "running" if running else "stopped",
            "data_dir": str(layout.root),
            "supervisor_pid": os.getpid() if running else None,
            "ready_seconds": self.ready_seconds,
            "nats": {
                "url": endpoints.nats_url,
                "credentials_dir": str(layout.nats_auth / "credentials"),
                "admin_credentials": credentials("admin"),
                **process("nats"),
            },
            "services": services,
            "console": console,
            "sim": sim,
            "simulators": simulators,
            "agents": agents,
            "sites": [
                {
                    "id": site.id,
                    "name": site.name,
                    "name_vi": site.name_vi,
                    "kind": site.kind,
                    "fields": [site.field],
                    "location": {"lat": site.lat, "lon": site.lon},
                }
                for site in self.sites
            ],
            "login": dict(self.login),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def write(self, children: Mapping[str, Child], *, running: bool = True) -> None:
        path = self.layout.city_file
        document = self.document(children, running=running)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        os.replace(temporary, path)


class Reporter:
    """Prints what happens: a progress bar while the city starts, then one line per event."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.began = time.monotonic()
        self.starting = True
        self.stopping = False
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=out,
            transient=True,
        )
        self._task = self.progress.add_task("starting the city", total=0)
        self._waiting: list[str] = []

    def expect(self, names: Sequence[str]) -> None:
        """``names`` will start; the bar counts them until they are ready."""
        self._waiting += [name for name in names if name not in self._waiting]
        self.progress.update(self._task, total=len(self._waiting) + self._done())
        self._describe()

    def drop(self, name: str) -> None:
        """``name`` will not be ready after all (skipped, or failed and optional)."""
        if name in self._waiting:
            self._waiting.remove(name)
            self.progress.update(self._task, total=len(self._waiting) + self._done())
            self._describe()

    def _done(self) -> int:
        return int(self.progress.tasks[0].completed)

    def _describe(self) -> None:
        shown = ", ".join(self._waiting[:4]) + (" ..." if len(self._waiting) > 4 else "")
        self.progress.update(self._task, description=f"starting: {shown}" if shown else "ready")

    def line(self, text: str, style: str = "") -> None:
        markup = f"[{style}]{escape(text)}[/{style}]" if style else escape(text)
        self.out.print(markup, highlight=False)

    def event(self, event: ChildEvent) -> None:
        child = event.child
        if self.stopping:
            return
        if event.kind is EventKind.READY:
            if child.name in self._waiting:
                self._waiting.remove(child.name)
                self.progress.advance(self._task)
                self._describe()
                self.line(
                    f"  ✓ {child.name:<24} ready after {time.monotonic() - self.began:4.1f} s "
                    f"(pid {child.pid})"
                )
            elif not self.starting:
                self.line(f"{child.name} is running again (pid {child.pid})", "green")
        elif event.kind is EventKind.EXITED:
            self.line(
                f"{child.name} (pid {child.process.pid if child.process else '?'}) ended: "
                f"{describe_status(event.status)}; last lines of {child.log}:",
                "red",
            )
            self.out.print(_indent(event.tail) or "  (nothing)", highlight=False, markup=False)
        elif event.kind is EventKind.RESTARTING:
            self.line(f"restarting {child.name} in {event.delay:g} s", "yellow")

    def skipped(self, name: str, reason: str) -> None:
        self.line(f"  - {name:<24} skipped: {reason}", "yellow")

    def summary(
        self,
        report: CityReport,
        accounts: Sequence[Account],
        notes: Sequence[str],
        seconds: float,
    ) -> None:
        endpoints, layout, out = report.endpoints, report.layout, self.out
        out.print(f"[bold green]ready[/bold green] in {seconds:.1f} s", highlight=False)
        rows = [("NATS", endpoints.nats_url)]
        rows += [
            (name, f"gRPC {endpoints.address(name)}")
            for name in ("identity", "records", "monitoring", "alerts")
        ]
        rows.append(("key set", f"{endpoints.identity_http_url}/.well-known/jwks.json"))
        if "console" in report.skipped:
            rows.append(("console", f"skipped: {report.skipped['console']}"))
        else:
            rows.append(("console", endpoints.console_url))
        for target in report.faults:
            rows.append((target.site, f"{target.endpoint} (fault: {target.fault})"))
        for label, value in rows:
            out.print(f"  {label:<18} {escape(value)}", highlight=False)
        out.print(f"  {'city.json':<18} {escape(str(layout.city_file))}", highlight=False)
        out.print(f"  {'logs':<18} {escape(str(layout.logs))}/<name>.log", highlight=False)
        for note in notes:
            out.print(f"  {escape(note)}", highlight=False)
        for account in accounts:
            if not account.created:
                continue
            if account.generated:
                out.print(
                    f"[bold]{account.username}[/bold] password: [bold]{escape(account.password)}"
                    "[/bold] (shown once: note it now)",
                    highlight=False,
                )
            else:
                out.print(
                    f"{account.username}: password from ${account.password_env}", highlight=False
                )
        identity = endpoints.address("identity")
        out.print(
            f"Log in: smartcity login ioc.admin -t {identity} (the administrator); "
            "ioc.operator acknowledges alerts"
            + ("" if "console" in report.skipped else f", also at {endpoints.console_url}"),
            highlight=False,
        )
        out.print("Ctrl-C stops the city.", highlight=False)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
