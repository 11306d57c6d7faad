"""``gossamer demo``: five real agents on this machine, a crash and a restart, narrated.

Unlike ``gossamer sim demo`` (the simulator, virtual time), everything here is
real: five ``gossamer agent`` processes on 127.0.0.1, UDP and TCP on loopback,
wall-clock timeouts (preset ``local``).  The script only watches them through
their debug endpoints, as an operator would:

1. start n1, then n2..n5 joining it, and wait until every agent sees all five
   alive;
2. SIGKILL n3 and show, for each survivor, when it suspected n3 and when it
   declared it dead (from each survivor's ``/api/events``);
3. restart n3 on the same address and show it rejoin with a larger epoch;
4. keep the cluster running (until Ctrl-C, or ``duration_s``), reporting the
   events one agent sees, then stop every agent with SIGTERM: each leaves the
   cluster gracefully.

The agents run in plaintext, which is acceptable on loopback only; their
logs go to a temporary directory, removed at the end unless ``keep_logs``
(or something failed).  Child processes are always stopped, whatever
happens to the script.
"""

from __future__ import annotations

__all__ = ["DemoFailed", "run_demo"]

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from gossamer.cli.client import (
    EndpointError,
    fetch_json,
    fetch_members,
    format_members,
    format_table,
)

_HOST = "127.0.0.1"
_START_TIMEOUT_S = 20.0
_CONVERGE_TIMEOUT_S = 30.0
_DETECT_TIMEOUT_S = 60.0
_REJOIN_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_POLL_S = 0.1
_LOG_TAIL_LINES = 25


class DemoFailed(Exception):
    """Something went wrong; the message says what, and where the logs are."""


@dataclass
class _Agent:
    name: str
    port: int
    http_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    exit_reported: bool = field(default=False)

    @property
    def address(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def http(self) -> str:
        return f"{_HOST}:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.http}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def run_demo(
    out: Callable[[str], None],
    *,
    duration_s: float | None = None,
    keep_logs: bool = False,
    nodes: int = 5,
) -> int:
    """Run the demo, writing its story line by line to ``out``; the exit status.

    ``duration_s`` bounds the last phase (the cluster left running); None
    waits for Ctrl-C.  Returns 0 on success, 1 if an agent failed (its log
    tail is shown), 130 if interrupted before the cluster was up.
    """
    if nodes < 3:
        raise ValueError("the demo needs at least 3 agents (one is killed)")
    workdir = Path(tempfile.mkdtemp(prefix="gossamer-demo-"))
    agents: list[_Agent] = []
    ports = _free_ports(2 * nodes)
    for i in range(nodes):
        name = f"n{i + 1}"
        agents.append(_Agent(name, ports[2 * i], ports[2 * i + 1], workdir / f"{name}.log"))
    story = _Story(out, workdir, agents)
    status = 0
    with _sigterm_as_interrupt():
        try:
            story.run(duration_s)
        except DemoFailed as exc:
            out(f"\nDEMO FAILED: {exc}")
            status = 1
        except KeyboardInterrupt:
            out("\nInterrupted.")
            status = 130
        finally:
            try:
                story.stop_all()
            except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stop_all killed them
                out("Interrupted again: the agents were killed.")
                status = 130
            if keep_logs or status == 1:
                out(f"The agents' logs are kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return status


class _Story:
    def __init__(self, out: Callable[[str], None], workdir: Path, agents: list[_Agent]) -> None:
        self.out = out
        self.workdir = workdir
        self.agents = agents
        self.started = time.monotonic()

    # ---------------------------------------------------------------- the phases

    def run(self, duration_s: float | None) -> None:
        self.start_cluster()
        victim = self.agents[2]
        old_epoch = self.kill_and_watch(victim)
        self.restart(victim, old_epoch)
        self.keep_running(duration_s)

    def start_cluster(self) -> None:
        say = self.out
        seed = self.agents[0]
        say(
            f"Starting {len(self.agents)} gossamer agents on {_HOST}, each a separate process "
            "(plaintext, fine on loopback only; preset 'local': quick timeouts)."
        )
        say(
            f"Their logs go to {self.workdir}/ (n1.log ... n{len(self.agents)}.log; "
            "removed at the end unless --keep-logs)."
        )
        say("")
        began = time.monotonic()
        self.launch(seed)
        self.wait_healthy([seed])
        say(f"  {seed.name} is up at {seed.address} (pid {seed.pid}): a cluster of one.")
        for agent in self.agents[1:]:
            self.launch(agent, join=seed.address)
        self.wait_healthy(self.agents[1:])
        names = ", ".join(a.name for a in self.agents[1:])
        say(f"  {names} are up and join through {seed.name}.")
        rows = self.wait_until(
            lambda: self.all_see(len(self.agents)),
            _CONVERGE_TIMEOUT_S,
            f"every agent seeing {len(self.agents)} alive members",
        )
        took = time.monotonic() - began
        say(
            f"Every agent sees all {len(self.agents)} alive, {took:.1f} s after the first "
            "process was launched.  The member table, as n1 sees it:"
        )
        say("")
        say(_indent(format_members(rows)))
        say("")
        say("Each agent serves a read-only debug endpoint:")
        table = [("AGENT", "PID", "GOSSIP", "DASHBOARD", "METRICS")] + [
            (a.name, str(a.pid), a.address, f"{a.url}/", f"{a.url}/metrics") for a in self.agents
        ]
        say(_indent(format_table(table)))
        say("")

    def kill_and_watch(self, victim: _Agent) -> int:
        say = self.out
        rows = fetch_members(self.agents[0].url)
        old_epoch = next(int(r["epoch"]) for r in rows if r["name"] == victim.name)
        survivors = [a for a in self.agents if a is not victim]
        say(
            f"Killing {victim.name} (pid {victim.pid}) with SIGKILL: no goodbye, the others "
            "must notice the silence."
        )
        killed_at = time.time()
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        victim.exit_reported = True
        seen: dict[str, dict[str, tuple[float, str]]] = {a.name: {} for a in survivors}

        def all_dead() -> bool:
            for agent in survivors:
                for event in self.events(agent, since=killed_at):
                    if event.get("member") == victim.name:
                        kind = str(event.get("kind"))
                        if kind in ("suspect", "dead") and kind not in seen[agent.name]:
                            seen[agent.name][kind] = (
                                float(event["at"]) - killed_at,
                                str(event.get("source") or "?"),
                            )
            return all("dead" in seen[a.name] for a in survivors)

        self.wait_until(all_dead, _DETECT_TIMEOUT_S, f"every survivor declaring {victim.name} dead")
        say("")
        say(
            f"Detection timeline: when each survivor saw {victim.name} suspect, then dead, "
            "in seconds after the kill (and which node raised it):"
        )
        say("")
        table = [("SURVIVOR", "SUSPECT", "DEAD")]
        for agent in survivors:
            table.append(
                (
                    agent.name,
                    _when(seen[agent.name].get("suspect")),
                    _when(seen[agent.name]["dead"]),
                )
            )
        suspects = [s["suspect"][0] for s in seen.values() if "suspect" in s]
        deaths = [s["dead"][0] for s in seen.values()]
        first_s = f"{min(suspects):.2f}" if suspects else "-"
        last_s = f"{max(suspects):.2f}" if suspects else "-"
        table.append(("first", first_s, f"{min(deaths):.2f}"))
        table.append(("last", last_s, f"{max(deaths):.2f}"))
        say(_indent(format_table(table)))
        say("")
        first_suspect = min(
            ((s["suspect"][0], s["suspect"][1]) for s in seen.values() if "suspect" in s),
            default=None,
        )
        if first_suspect is not None:
            by = first_suspect[1]
            say(
                f"{by}'s probe of {victim.name} went unanswered, directly and through a "
                f"helper, so {by} suspected it and gossiped the suspicion.  A node that is "
                f"only slow refutes a suspicion of itself; {victim.name} could not, so after "
                f"{min(deaths) - first_suspect[0]:.1f} s the suspicion ran out, "
                f"{victim.name} was declared dead, and the news spread."
            )
        say("")
        return old_epoch

    def restart(self, victim: _Agent, old_epoch: int) -> None:
        say = self.out
        survivors = [a for a in self.agents if a is not victim]
        say(f"Restarting {victim.name} with the same name and address ({victim.address}).")
        launched_at = time.time()
        self.launch(victim, join=self.agents[0].address)
        self.wait_healthy([victim])
        up_s = time.time() - launched_at
        back: dict[str, tuple[float, str, int]] = {}

        def all_back() -> bool:
            for agent in survivors:
                if agent.name in back:
                    continue
                for event in self.events(agent, since=launched_at):
                    if (
                        event.get("member") == victim.name
                        and event.get("kind") in ("restarted", "joined", "alive")
                        and int(event.get("epoch", 0)) > old_epoch
                    ):
                        at = float(event["at"]) - launched_at
                        back[agent.name] = (at, str(event["kind"]), int(event["epoch"]))
                        break
            return len(back) == len(survivors)

        self.wait_until(
            all_back, _REJOIN_TIMEOUT_S, f"every survivor seeing {victim.name} alive again"
        )
        new_epoch = max(epoch for _, _, epoch in back.values())
        say(
            f"The new {victim.name} answered its debug endpoint {up_s:.1f} s after the launch "
            "(most of it is Python starting).  When each survivor saw it back, in seconds "
            "after the launch:"
        )
        say("")
        table = [("SURVIVOR", "SAW IT BACK", "EVENT")]
        table += [(a.name, f"{back[a.name][0]:.2f}", back[a.name][1]) for a in survivors]
        say(_indent(format_table(table)))
        say("")
        say(
            f"Every survivor sees {victim.name} alive again, with a new epoch: "
            f"{old_epoch} -> {new_epoch}."
        )
        say(
            "The epoch numbers a node's lives (its boot time in milliseconds, kept growing "
            "in --data-dir): a larger one tells the peers this is a new life of "
            f"{victim.name}, not a late message from the dead one."
        )
        times = [at for at, _, _ in back.values()]
        if max(times) - min(times) > 3.0:
            late = max(back, key=lambda name: back[name][0])
            say(
                f"{late} heard it last: gossip sends each piece of news a bounded number of "
                "times (retransmit_mult x ceil(log10(n + 1)), only 2 in this small cluster), "
                "and a node the news missed catches up at its next full-state sync "
                "(push-pull, every 15 s or so in preset local)."
            )
        say("")

    def keep_running(self, duration_s: float | None) -> None:
        say = self.out
        first, other = self.agents[0], self.agents[3]
        say("The cluster keeps running.  Things to try from another terminal:")
        tries = [
            (f"open {first.url}/ in a browser", "the dashboard: members, ring and events, live"),
            (
                f"{_gossamer_command()} members --http {first.http}",
                "the member table (--all adds dead and left)",
            ),
            (
                f"{_gossamer_command()} ring --http {first.http} --key user:42 -n 3",
                "which nodes own a key (without --key: each node's share of the ring)",
            ),
            (
                f"{_gossamer_command()} tags set role=web "
                f"--control {self.workdir / 'control' / (other.name + '.sock')}",
                f"tag {other.name} (then: members --http {first.http} --tag role=web)",
            ),
            (f"curl {first.url}/metrics", "Prometheus metrics"),
            (f"kill -9 {other.pid}", f"crash {other.name}: the others declare it dead"),
            (f"kill {other.pid}", f"stop {other.name} (SIGTERM): it leaves, the others see 'left'"),
        ]
        for command, meaning in tries:
            say(f"  {command}")
            say(f"      {meaning}")
        say("  pids: " + ", ".join(f"{a.name}={a.pid}" for a in self.agents))
        say(f"  logs: tail -f {self.workdir}/*.log")
        if duration_s is None:
            say(
                "Press Ctrl-C to stop the cluster.  Member events and ring changes, "
                "as the agents see them:"
            )
        else:
            say(
                f"Stopping in {duration_s:g} s (--duration).  "
                "Member events and ring changes, as the agents see them:"
            )
        say("")
        deadline = None if duration_s is None else time.monotonic() + duration_s
        since = time.time()
        observer: _Agent | None = None
        try:
            while deadline is None or time.monotonic() < deadline:
                if observer is None or not observer.running:
                    observer = next((a for a in self.agents if a.running), None)
                    if observer is None:
                        say("  every agent has exited.")
                        return
                for event in self.events(observer, since=since):
                    since = max(since, float(event["at"]))
                    if event.get("kind") == "ring":
                        say(
                            f"  {_clock(float(event['at']))}  {observer.name}'s ring: "
                            f"{event.get('detail')}"
                        )
                        continue
                    if event.get("member") == observer.name:
                        continue
                    by = f" (by {event['source']})" if event.get("source") else ""
                    say(
                        f"  {_clock(float(event['at']))}  {observer.name} sees: "
                        f"{event.get('member')} {event.get('kind')}{by}"
                    )
                for agent in self.agents:
                    if agent.proc is not None and not agent.running and not agent.exit_reported:
                        agent.exit_reported = True
                        say(
                            f"  {_clock(time.time())}  {agent.name} (pid {agent.pid}) "
                            f"exited: {_exit_text(agent)}"
                        )
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("")
            say("Interrupted: stopping the cluster.")

    # ---------------------------------------------------------------- processes

    def launch(self, agent: _Agent, *, join: str | None = None) -> None:
        command = [
            sys.executable,
            "-m",
            "gossamer",
            "agent",
            "--name",
            agent.name,
            "--bind",
            agent.address,
            "--http",
            agent.http,
            "--plaintext",
            "--preset",
            "local",
            "--data-dir",
            str(self.workdir / "data"),
            "--control",  # its own sockets: two demos, or a real agent, may run here too
            str(self.workdir / "control" / f"{agent.name}.sock"),
        ]
        if join is not None:
            command += ["--join", join]
        with open(agent.log_path, "ab") as log:
            # A session of its own: Ctrl-C in the terminal reaches the demo
            # only, and the demo stops the agents in order.
            agent.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        agent.exit_reported = False

    def stop_all(self) -> None:
        running = [a for a in self.agents if a.running]
        if not running:
            return
        self.out(
            f"Stopping {', '.join(a.name for a in running)} with SIGTERM: each leaves the "
            "cluster gracefully."
        )
        try:
            for agent in running:
                assert agent.proc is not None
                agent.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            for agent in running:
                assert agent.proc is not None
                try:
                    agent.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.out(f"{agent.name} did not stop in time; killing it.")
        finally:
            # Whatever happened above (even a second Ctrl-C), no agent outlives the demo.
            for agent in running:
                assert agent.proc is not None
                if agent.proc.poll() is None:
                    agent.proc.kill()
                    agent.proc.wait()
        codes = ", ".join(f"{a.name}={_exit_text(a)}" for a in running)
        self.out(f"All agents stopped ({codes}).")

    def check_running(self) -> None:
        for agent in self.agents:
            if agent.proc is not None and not agent.exit_reported and not agent.running:
                raise DemoFailed(
                    f"agent {agent.name} exited unexpectedly ({_exit_text(agent)}); "
                    f"the end of {agent.log_path}:\n{_tail(agent.log_path)}"
                )

    # ---------------------------------------------------------------- watching

    def wait_healthy(self, agents: list[_Agent]) -> None:
        def healthy() -> bool:
            return all(self.healthz(a) for a in agents)

        names = ", ".join(a.name for a in agents)
        self.wait_until(healthy, _START_TIMEOUT_S, f"{names} to answer /healthz")

    def wait_until(self, check: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_running()
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- the end of {a.log_path}:\n{_tail(a.log_path, 8)}" for a in self.agents
                )
                raise DemoFailed(f"gave up after {timeout_s:g} s waiting for {what}\n{logs}")
            time.sleep(_POLL_S)

    def healthz(self, agent: _Agent) -> bool:
        try:
            body = fetch_json(agent.url, "/healthz", timeout_s=1.0)
        except EndpointError:
            return False
        return isinstance(body, dict) and body.get("status") == "ok"

    def members(self, agent: _Agent) -> list[dict[str, Any]]:
        try:
            return fetch_members(agent.url, timeout_s=1.0)
        except EndpointError:
            return []

    def events(self, agent: _Agent, *, since: float) -> list[dict[str, Any]]:
        try:
            body = fetch_json(agent.url, f"/api/events?since={since!r}", timeout_s=1.0)
        except EndpointError:
            return []
        events = body.get("events") if isinstance(body, dict) else None
        return events if isinstance(events, list) else []

    def all_see(self, count: int) -> list[dict[str, Any]] | None:
        """n1's member rows once every agent sees ``count`` alive members, else None."""
        tables = [self.members(a) for a in self.agents]
        for rows in tables:
            if sum(1 for r in rows if r.get("status") == "alive") != count:
                return None
        return tables[0]


# -------------------------------------------------------------------- helpers


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free for both TCP and UDP on the loopback, right now.

    The sockets are held until all are found, so no port is handed out
    twice, then closed for the agents to bind.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            tcp.bind((_HOST, 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            try:
                udp.bind((_HOST, port))
            except OSError:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop the demo like Ctrl-C, so the agents are cleaned up too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"    (cannot read it: {exc})"
    tail = text.splitlines()[-lines:] or ["(empty)"]
    return "\n".join(f"    {line}" for line in tail)


def _exit_text(agent: _Agent) -> str:
    code = None if agent.proc is None else agent.proc.returncode
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _when(seen: tuple[float, str] | None) -> str:
    if seen is None:
        return "-"
    return f"{seen[0]:.2f} (by {seen[1]})"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _gossamer_command() -> str:
    """How the user can run ``gossamer`` from their shell: the script if on PATH."""
    script = Path(sys.executable).with_name("gossamer")
    found = shutil.which("gossamer")
    if found is not None and Path(found).resolve() == script.resolve():
        return "gossamer"
    if script.exists():
        return (
            os.path.relpath(script) if not os.path.relpath(script).startswith("..") else str(script)
        )
    return f"{sys.executable} -m gossamer"
