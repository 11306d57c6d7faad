"""The ``gossamer`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gossamer._version import __version__


def _sim_demo(args: argparse.Namespace) -> int:
    from gossamer.lab.demo import run_demo

    run_demo(print, seed=args.seed, nodes=args.nodes, loss=args.loss)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gossamer.cli.demo import run_demo

    def say(line: str) -> None:
        print(line, flush=True)

    return run_demo(say, duration_s=args.duration, keep_logs=args.keep_logs)


def _agent(args: argparse.Namespace) -> int:
    from gossamer.cli.agent import agent_config, configure_logging, run_agent
    from gossamer.errors import LocalError

    try:
        config, keyring_file = agent_config(
            name=args.name,
            bind=args.bind,
            advertise=args.advertise,
            join=args.join or (),
            keyring_file=args.keyring,
            plaintext=args.plaintext,
            cluster=args.cluster,
            http=args.http,
            http_hosts=tuple(args.http_host) if args.http_host else None,
            config_file=args.config,
            preset=args.preset,
            metadata=args.metadata,
            data_dir=args.data_dir,
        )
    except LocalError as exc:
        print(f"gossamer agent: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.name, args.log_level, args.log_format)
    control = None
    if not args.no_control:
        from gossamer.runtime.control import default_path

        control = Path(args.control) if args.control else default_path(config.name)
    try:
        groups = [_pair(text, config.name, "--group") for text in args.group or ()]
        names = [_pair(text, config.name, "--register") for text in args.register or ()]
    except LocalError as exc:
        print(f"gossamer agent: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        run_agent(config, keyring_file=keyring_file, control=control, groups=groups, names=names)
    )


def _pair(text: str, default: str, flag: str) -> tuple[str, str]:
    """``KEY=VALUE`` or ``KEY`` (the value then ``default``)."""
    from gossamer.errors import LocalError

    key, _, value = text.partition("=")
    if not key:
        raise LocalError(f"{flag} {text!r}: NAME or NAME=MEMBER expected")
    return key, value or default


def _control_path(args: argparse.Namespace) -> Path:
    """The socket of the agent the command is for: --control, --name, or the only one."""
    from gossamer.runtime.control import ControlError, default_path

    if args.control:
        return Path(args.control)
    if args.name:
        return default_path(args.name)
    found = sorted(default_path("x").parent.glob("*.sock"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ControlError(
            f"no agent's control socket in {default_path('x').parent} (is one running, "
            "under this user?)"
        )
    names = ", ".join(p.stem for p in found)
    raise ControlError(f"several agents run here ({names}): say which with --name")


def _control(
    command: str, build: Callable[[argparse.Namespace], dict[str, object]]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from gossamer.errors import LocalError
        from gossamer.runtime.control import call

        try:
            result = call(_control_path(args), command, build(args))
        except LocalError as exc:
            print(f"gossamer {args.command}: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(_describe(args.command, result))
        if isinstance(result, dict) and (
            result.get("missing")
            or not all(a.get("ok") for a in result.get("answers", {}).values())
        ):
            return 1  # some member did not make the change: say so in the status too
        return 0

    return run


def _describe(command: str, result: object) -> str:
    if not isinstance(result, dict):
        return str(result)
    if command == "join":
        answered = result.get("answered") or []
        return f"joined: {len(answered)} answered" + "".join(f"\n  {a}" for a in answered)
    if command == "leave":
        return f"{result.get('leaving')} is leaving the cluster and will stop"
    if command == "force-leave":
        return f"{result.get('name')} marked left; every node reaps it soon"
    if command == "drain":
        state = "draining: the ring gives it no keys" if result.get("draining") else "not draining"
        return f"{result.get('name')} is {state}"
    if command == "tags":
        tags = result.get("tags") or {}
        return "\n".join(f"{k}={v}" for k, v in sorted(tags.items())) or "(no tags)"
    if command == "keys" and "answers" in result:
        answers = result.get("answers") or {}
        lines = [
            f"{name}: {'ok' if a.get('ok') else 'FAILED'} ({a.get('detail')})"
            for name, a in sorted(answers.items())
        ]
        lines += [f"{name}: no answer" for name in result.get("missing") or []]
        return "\n".join(lines)
    if command == "keys":
        keys = result.get("keys") or []
        primary = result.get("primary")
        return "\n".join(f"{k}{'  (primary)' if k == primary else ''}" for k in keys)
    return json.dumps(result)


def _tags_args(args: argparse.Namespace) -> dict[str, object]:
    from gossamer.membership.tags import parse_tag

    if args.action == "set":
        return {"set": dict(parse_tag(t) for t in args.items)}
    return {"delete": list(args.items)}


def _keys_args(args: argparse.Namespace) -> dict[str, object]:
    if args.action != "list" and not args.key:
        from gossamer.errors import LocalError

        raise LocalError(f"keys {args.action} needs the key (base64): keys {args.action} KEY")
    return {"op": args.action, "key": args.key or "", "local": args.local}


def _members(args: argparse.Namespace) -> int:
    from gossamer.cli.client import EndpointError, fetch_members, format_members, node_name
    from gossamer.errors import LocalError
    from gossamer.membership.tags import parse_tag

    try:
        wanted = [parse_tag(t) for t in args.tag or ()]
        rows = fetch_members(args.http)
        rows = [r for r in rows if all((r.get("tags") or {}).get(k) == v for k, v in wanted)]
        everything = args.all or bool(args.status)
        if args.status:
            rows = [r for r in rows if r.get("status") in args.status]
        if args.json:
            shown = [r for r in rows if everything or r.get("status") in ("alive", "suspect")]
            print(json.dumps(shown, indent=2))
        else:
            print(f"members as seen by {node_name(args.http)}:")
            print(format_members(rows, include_gone=everything))
    except (EndpointError, LocalError) as exc:
        print(f"gossamer members: {exc}", file=sys.stderr)
        return 1
    return 0


def _ring(args: argparse.Namespace) -> int:
    from gossamer.cli.client import (
        EndpointError,
        fetch_ring,
        format_ring,
        format_ring_key,
        node_name,
    )

    if args.n is not None and args.key is None:
        print("gossamer ring: -n is the number of owners of a key; pass --key too", file=sys.stderr)
        return 2
    try:
        body = fetch_ring(args.http, key=args.key, n=args.n)
        if args.json:
            print(json.dumps(body, indent=2))
        elif args.key is not None:
            print(format_ring_key(body))
        else:
            print(f"ring as seen by {node_name(args.http)}:")
            print(format_ring(body))
    except EndpointError as exc:
        print(f"gossamer ring: {exc}", file=sys.stderr)
        return 1
    return 0


def _show(
    command: str,
    args: argparse.Namespace,
    fetch: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """A read-only command: the endpoint's body as JSON or as ``render`` reads it."""
    from gossamer.cli.client import EndpointError, node_name

    try:
        body = fetch()
        if args.json:
            print(json.dumps(body, indent=2))
        else:
            print(f"{command} as seen by {node_name(args.http)}:")
            print(render(body))
    except EndpointError as exc:
        print(f"gossamer {command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _overlay(args: argparse.Namespace) -> int:
    from gossamer.cli.client import fetch_overlay, format_overlay

    return _show("overlay", args, lambda: fetch_overlay(args.http), format_overlay)


def _groups(args: argparse.Namespace) -> int:
    from gossamer.cli.client import fetch_groups, format_groups

    def fetch() -> dict[str, Any]:
        return fetch_groups(args.http, scope=args.scope, group=args.group)

    return _show("groups", args, fetch, format_groups)


def _names(args: argparse.Namespace) -> int:
    from gossamer.cli.client import fetch_names, format_names

    return _show("names", args, lambda: fetch_names(args.http, name=args.name), format_names)


def _sim_swim(args: argparse.Namespace) -> int:
    from gossamer.lab.swim_experiment import run_swim_experiment

    started = time.perf_counter()
    report = run_swim_experiment(
        args.nodes,
        args.seed,
        loss=args.loss,
        slow=args.slow,
        lifeguard=not args.no_lifeguard,
        duration_s=args.duration,
    )
    result = report.as_json(time.perf_counter() - started)
    if args.json:
        print(json.dumps(result))
        return 0
    print(_swim_report(result, report.slow_suspicions, report.slow_deaths))
    return 0


def _sim_overlay(args: argparse.Namespace) -> int:
    from gossamer.lab.overlay_paper import format_report, timed_experiment

    def progress(line: str) -> None:
        if not args.json:
            print(f"  ... {line}", file=sys.stderr, flush=True)

    result, report = timed_experiment(
        args.nodes,
        args.seed,
        broadcasts=args.broadcasts,
        reset=not args.detect_on_send,
        clock=time.perf_counter,
        progress=progress,
    )
    print(json.dumps(result) if args.json else format_report(result, report))
    return 0


def _swim_report(r: dict[str, object], slow_suspicions: int, slow_deaths: int) -> str:
    def secs(value: object) -> str:
        return "never" if value is None else f"{value} s"

    lines = [
        f"SWIM, {r['nodes']} nodes, seed {r['seed']}, loss {r['loss']}, "
        f"starved {r['slow']}, lifeguard {'on' if r['lifeguard'] else 'off'}",
        f"  everyone saw everyone alive after   {secs(r['converge_s'])}",
        f"  crashed node declared dead: first   {secs(r['detect_first_s'])}",
        f"                              last    {secs(r['detect_all_s'])}",
        f"  false suspicions / deaths           {r['false_suspicions']} / {r['false_deaths']}",
        f"  suspicions / deaths of starved      {slow_suspicions} / {slow_deaths}",
        f"  per node, steady state              {r['bytes_per_node_per_s']} B/s, "
        f"{r['msgs_per_node_per_s']} msgs/s",
        f"  wall time                           {r['wall_s']} s",
    ]
    return "\n".join(lines)


def _keygen(args: argparse.Namespace) -> int:
    from gossamer.runtime.keyring import (
        Keyring,
        KeyringError,
        encode_key,
        fingerprint,
        generate_key,
        load_keyring,
        save_keyring,
    )

    key = generate_key()
    try:
        if args.keyring is None:
            if args.install:
                raise KeyringError("--install needs --keyring FILE")
            print(encode_key(key))
            return 0
        if not os.path.exists(args.keyring):
            save_keyring(args.keyring, Keyring([key]))
            print(f"created {args.keyring} with primary key {fingerprint(key)}", file=sys.stderr)
            return 0
        if not args.install:
            raise KeyringError(
                f"{args.keyring} already exists; pass --install to add a new secondary key to it"
            )
        keyring = load_keyring(args.keyring)
        keyring.install(key)
        save_keyring(args.keyring, keyring)
    except KeyringError as exc:
        print(f"gossamer keygen: {exc}", file=sys.stderr)
        return 2
    print(f"installed secondary key {fingerprint(key)} in {args.keyring}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gossamer",
        description="Masterless clusters for Python: membership, failure detection, soft state.",
    )
    parser.add_argument("--version", action="version", version=f"gossamer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run five agents on this machine, kill one, restart it, narrate what they see",
        description=(
            "Start five agents (n1..n5) as separate processes on 127.0.0.1 (plaintext, "
            "preset local), wait until they all see each other, SIGKILL n3 and show when "
            "each survivor suspected it and declared it dead, restart n3 and show it "
            "rejoin with a new epoch, then keep the cluster running until Ctrl-C."
        ),
    )
    demo.add_argument(
        "--duration",
        type=_seconds_at_least(0.0),
        default=None,
        metavar="S",
        help="stop S seconds after the restart instead of waiting for Ctrl-C",
    )
    demo.add_argument(
        "--keep-logs", action="store_true", help="keep the agents' log directory at exit"
    )
    demo.set_defaults(run=_demo)

    agent = commands.add_parser(
        "agent",
        help="run one node until SIGTERM or Ctrl-C",
        description=(
            "Run one node of a cluster in the foreground, logging one line per member "
            "event on stderr.  Flags override the --config file.  SIGTERM or SIGINT: "
            "leave the cluster gracefully, stop, exit 0 (a second one stops at once).  "
            "SIGHUP: reload the keyring file (install the keys it lists, make its first "
            "key the primary, remove the keys it no longer lists) and log the "
            "fingerprints."
        ),
    )
    agent.add_argument("--name", help="the node's name, unique in the cluster")
    agent.add_argument(
        "--bind", metavar="HOST:PORT", help="UDP and TCP address (default 127.0.0.1:7946)"
    )
    agent.add_argument(
        "--advertise", metavar="HOST:PORT", help="the address peers use (default: --bind)"
    )
    agent.add_argument(
        "--join",
        metavar="HOST:PORT,...",
        action="append",
        help="seed addresses to join through (repeatable; none starts a new cluster)",
    )
    agent.add_argument(
        "--keyring", metavar="FILE", help="the cluster's keyring (gossamer keygen --keyring FILE)"
    )
    agent.add_argument(
        "--plaintext",
        action="store_true",
        help="run without encryption: only on a trusted network such as loopback",
    )
    agent.add_argument("--cluster", metavar="NAME", help="the cluster's name (default gossamer)")
    agent.add_argument(
        "--http", metavar="HOST:PORT", help="serve the read-only debug endpoint there"
    )
    agent.add_argument(
        "--http-host",
        metavar="NAME",
        action="append",
        help="a host name the endpoint answers to besides IP addresses and localhost "
        "(repeatable; other Host headers are refused)",
    )
    agent.add_argument("--config", metavar="FILE.toml", help="settings file; flags override it")
    agent.add_argument(
        "--preset", choices=("lan", "wan", "local"), help="timing and size preset (default lan)"
    )
    agent.add_argument("--metadata", metavar="TEXT", help="published with the node's membership")
    agent.add_argument(
        "--group",
        action="append",
        metavar="GROUP[=MEMBER]",
        help="join GROUP (as MEMBER, default the node's name) once started; repeatable",
    )
    agent.add_argument(
        "--register",
        action="append",
        metavar="NAME[=MEMBER]",
        help="register the global NAME (for MEMBER, default the node's name); repeatable",
    )
    agent.add_argument(
        "--data-dir", metavar="DIR", help="keep the last epoch there, so restarts always grow it"
    )
    agent.add_argument(
        "--log-level", choices=("info", "debug", "warning"), default="info", help="(default info)"
    )
    agent.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line for a log shipper (default text)",
    )
    agent.add_argument(
        "--control",
        metavar="PATH",
        help="the control channel's Unix socket (default $XDG_RUNTIME_DIR/gossamer/NAME.sock "
        "or /tmp/gossamer-UID/NAME.sock)",
    )
    agent.add_argument("--no-control", action="store_true", help="serve no control channel")
    agent.set_defaults(run=_agent)

    def control_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--control", metavar="PATH", help="the agent's control socket")
        parser.add_argument("--name", metavar="NAME", help="the agent's name, to find its socket")
        parser.add_argument("--json", action="store_true", help="print the agent's answer as JSON")

    join = commands.add_parser("join", help="make a running agent join ADDR (one or more)")
    join.add_argument("addresses", nargs="+", metavar="ADDR")
    join.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    control_args(join)
    join.set_defaults(
        run=_control("join", lambda a: {"addresses": a.addresses, "timeout_s": a.timeout})
    )
    leave = commands.add_parser("leave", help="make a running agent leave the cluster and stop")
    control_args(leave)
    leave.set_defaults(run=_control("leave", lambda a: {}))
    force = commands.add_parser(
        "force-leave", help="mark a dead member left, so every node reaps it soon"
    )
    force.add_argument("member", metavar="NAME")
    control_args(force)
    force.set_defaults(run=_control("force-leave", lambda a: {"name": a.member}))
    drain = commands.add_parser(
        "drain",
        help="mark a running agent draining (a member still, given no keys), or --undo it",
    )
    drain.add_argument("--undo", action="store_true", help="take the agent out of draining")
    control_args(drain)
    drain.set_defaults(run=_control("drain", lambda a: {"draining": not a.undo}))
    tags = commands.add_parser("tags", help="set or delete a running agent's tags")
    tags.add_argument("action", choices=("set", "delete"))
    tags.add_argument("items", nargs="+", metavar="KEY=VALUE|KEY")
    control_args(tags)
    tags.set_defaults(run=_control("tags", _tags_args))
    keys = commands.add_parser(
        "keys",
        help="list this agent's keys, or install, use or remove a key on every live member "
        "(their keyring files too)",
    )
    keys.add_argument("action", choices=("list", "install", "use", "remove"))
    keys.add_argument("key", nargs="?", metavar="KEY", help="the key, base64 (not for list)")
    keys.add_argument(
        "--local", action="store_true", help="change this agent's keyring only, not the cluster's"
    )
    control_args(keys)
    keys.set_defaults(run=_control("keys", _keys_args))

    members = commands.add_parser(
        "members", help="print the member table of a running agent (its debug endpoint)"
    )
    members.add_argument(
        "--http", metavar="URL", required=True, help="the agent's debug endpoint, host:port or URL"
    )
    members.add_argument("--all", action="store_true", help="include dead and left members")
    members.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="only members with this tag (repeatable)",
    )
    members.add_argument(
        "--status",
        action="append",
        choices=("alive", "suspect", "dead", "left"),
        help="only members in this status (repeatable)",
    )
    members.add_argument("--json", action="store_true", help="print the rows as JSON")
    members.set_defaults(run=_members)

    ring = commands.add_parser(
        "ring",
        help="print the consistent-hashing ring of a running agent, or where a key lives on it",
        description=(
            "Without --key: each node on the agent's ring with its points, weight and share "
            "of the key space, then a summary (nodes, vnodes, the largest share over the "
            "mean).  With --key: the key's hash and the nodes that own it, in preference "
            "order (the first is the owner, the next are where its replicas go).  Exits 1 "
            "when the endpoint cannot be reached or the node keeps no ring."
        ),
    )
    ring.add_argument(
        "--http", metavar="URL", required=True, help="the agent's debug endpoint, host:port or URL"
    )
    ring.add_argument("--key", metavar="KEY", help="show the owners of KEY (as UTF-8)")
    ring.add_argument(
        "-n",
        type=_at_least(1),
        default=None,
        metavar="N",
        help="with --key: how many owners to show, 1 to 64 (default 1)",
    )
    ring.add_argument("--json", action="store_true", help="print the endpoint's JSON")
    ring.set_defaults(run=_ring)

    overlay = commands.add_parser(
        "overlay",
        help="print the overlay links of a running agent: tree role, phi, last frame",
        description=(
            "Each active link of the agent (HyParView's active view) with its role in the "
            "broadcast tree (eager: payloads go down it; lazy: only announcements), the phi "
            "of its silence and how long ago a frame last came on it, as of the last "
            "heartbeat tick; then the passive view's size, the broadcast cache and the main "
            "counters.  Exits 1 when the endpoint cannot be reached or the node runs no "
            "overlay."
        ),
    )
    overlay.add_argument(
        "--http", metavar="URL", required=True, help="the agent's debug endpoint, host:port or URL"
    )
    overlay.add_argument("--json", action="store_true", help="print the endpoint's JSON")
    overlay.set_defaults(run=_overlay)

    groups = commands.add_parser(
        "groups",
        help="print the process groups a running agent knows (pg): who is in which group",
        description=(
            "Every (node, member) in every group of every scope, as the agent holds them, "
            "then each owner's version and entry count and the registry's counters.  "
            "Exits 1 when the endpoint cannot be reached or the node runs no registry."
        ),
    )
    groups.add_argument(
        "--http", metavar="URL", required=True, help="the agent's debug endpoint, host:port or URL"
    )
    groups.add_argument("--scope", help="only this scope")
    groups.add_argument("--group", help="only groups of this name")
    groups.add_argument("--json", action="store_true", help="print the endpoint's JSON")
    groups.set_defaults(run=_groups)

    names = commands.add_parser(
        "names",
        help="print the global names a running agent knows: holder, claims, conflicts",
        description=(
            "Every registered name with the claim that wins it (node, member, Lamport time) "
            "and how many nodes claim it; the names claimed by more than one node right now "
            "(a conflict being resolved after a partition); the claims this agent lost; the "
            "registry's counters.  Exits 1 when the endpoint cannot be reached or the node "
            "runs no registry."
        ),
    )
    names.add_argument(
        "--http", metavar="URL", required=True, help="the agent's debug endpoint, host:port or URL"
    )
    names.add_argument("--name", help="only this name")
    names.add_argument("--json", action="store_true", help="print the endpoint's JSON")
    names.set_defaults(run=_names)

    sim = commands.add_parser("sim", help="run a simulated experiment and report its figures")
    experiments = sim.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    sim_demo = experiments.add_parser(
        "demo",
        help="a small simulated cluster, narrated (virtual time, deterministic)",
    )
    sim_demo.add_argument("--seed", type=int, default=7, help="the simulation seed (default 7)")
    sim_demo.add_argument("--nodes", type=_at_least(3), default=5, help="cluster size (default 5)")
    sim_demo.add_argument(
        "--loss", type=_fraction, default=0.01, help="datagram loss probability (default 0.01)"
    )
    sim_demo.set_defaults(run=_sim_demo)
    swim = experiments.add_parser(
        "swim",
        help="join N SWIM nodes through one seed, crash one, report detection and load",
        description=(
            "Join N nodes through one seed, let them settle, crash one node, run on, "
            "and report convergence, detection times, false alarms and bandwidth. "
            "Deterministic: the same arguments give the same figures (but wall_s)."
        ),
    )
    swim.add_argument("--nodes", type=_at_least(3), default=100, help="cluster size (100)")
    swim.add_argument("--seed", type=int, default=1, help="the simulation seed (1)")
    swim.add_argument("--loss", type=_fraction, default=0.0, help="datagram loss (0)")
    swim.add_argument(
        "--slow",
        type=_fraction,
        default=0.0,
        help="fraction of nodes starved after settling: inputs held back 0.5-2.5 s (0)",
    )
    swim.add_argument(
        "--no-lifeguard", action="store_true", help="plain SWIM: no Lifeguard extensions"
    )
    swim.add_argument(
        "--duration",
        type=_seconds_over(40.0),
        default=120.0,
        help="simulated seconds from boot, over 40 (120)",
    )
    swim.add_argument("--json", action="store_true", help="print one JSON object")
    swim.set_defaults(run=_sim_swim)
    overlay = experiments.add_parser(
        "overlay",
        help="the HyParView and Plumtree reports' experiments, beside their figures",
        description=(
            "Build an overlay of N nodes (HyParView, joined one by one, 50 shuffle "
            "periods) and run the reports' experiments on it: graph properties, "
            "broadcasts after 10-95 % of the nodes fail at once, Plumtree's redundancy "
            "and hops in a stable overlay, and churn.  Deterministic: the same "
            "arguments give the same figures (but wall_s).  10,000 nodes take about "
            "25 minutes on one core; 1,000 about two minutes."
        ),
    )
    overlay.add_argument("--nodes", type=_at_least(50), default=10_000, help="nodes (10000)")
    overlay.add_argument("--seed", type=int, default=1, help="the simulation seed (1)")
    overlay.add_argument(
        "--broadcasts",
        type=_at_least(1),
        default=1_000,
        help="broadcasts after each failure level, as the report (1000)",
    )
    overlay.add_argument(
        "--detect-on-send",
        action="store_true",
        help="a crash is noticed only when a link is next used (a machine that vanished); "
        "by default a crashed process's connections reset at once",
    )
    overlay.add_argument("--json", action="store_true", help="print one JSON object")
    overlay.set_defaults(run=_sim_overlay)

    keygen = commands.add_parser(
        "keygen",
        help="print a new cluster key, or create or extend a keyring file",
        description=(
            "Print a new base64 key (32 random bytes).  With --keyring FILE, create FILE "
            "(mode 0600) holding one new key, or with --install add a new secondary key "
            "to an existing FILE; an existing keyring is never overwritten."
        ),
    )
    keygen.add_argument("--keyring", metavar="FILE", help="the keyring file to create or extend")
    keygen.add_argument(
        "--install", action="store_true", help="add a new secondary key to an existing FILE"
    )
    keygen.set_defaults(run=_keygen)
    return parser


_N = TypeVar("_N", int, float)


def _checked(kind: type[_N], accept: Callable[[_N], bool], says: str) -> Callable[[str], _N]:
    """An argparse ``type``: ``kind(text)``, finite, and ``accept``-ed, else ``says``."""

    def parse(text: str) -> _N:
        value = kind(text)  # a ValueError reads "invalid int value" to argparse
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(says)
        return value

    parse.__name__ = kind.__name__
    return parse


def _at_least(minimum: int) -> Callable[[str], int]:
    return _checked(int, lambda v: v >= minimum, f"must be at least {minimum}")


def _seconds_over(minimum: float) -> Callable[[str], float]:
    return _checked(float, lambda v: v > minimum, f"must be a number of seconds over {minimum:g}")


def _seconds_at_least(minimum: float) -> Callable[[str], float]:
    says = f"must be a number of seconds, at least {minimum:g}"
    return _checked(float, lambda v: v >= minimum, says)


_fraction = _checked(float, lambda v: 0 <= v < 1, "must be in [0, 1)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
