"""``gossamer agent``: one node as a long-running process, and its command-line client.

The agent is the runtime (:class:`~gossamer.runtime.node.Node`) wrapped for an
operator: its configuration comes from a TOML file (``--config``) with
command-line flags on top, its member events are logged one line each on
stderr, and it answers signals:

* **SIGTERM, SIGINT** -- leave the cluster gracefully (peers see the node
  *left*, not dead), stop, exit 0.  A second signal while leaving stops at
  once without waiting for the news to spread.

It exits 3 by itself when another live node holds its name and refutes it
(``failure/names.py``); while a seed refuses its join for that reason it
keeps retrying and logs the holder's address.
* **SIGHUP** -- reload the keyring file (``--keyring`` or ``keyring_file``):
  install the keys it lists, make its first key the primary, remove the keys
  it no longer lists, and log the fingerprints.  To rotate a key with no
  downtime, do the three steps of :mod:`gossamer.runtime.keyring` across the cluster,
  one SIGHUP per node and step: add the new key to every node's file as a
  secondary (``gossamer keygen --keyring FILE --install``); then move it
  first in every file; then delete the old key from every file.  A file
  that fails to load changes nothing (the error is logged).  In plaintext,
  SIGHUP is logged and ignored.

With ``engine_thread`` (the default) the node's engine runs on a thread of
its own, so the agent's own loop only waits for signals.

Every log line starts with the time in the local zone and the local node's
name (``2026-11-21T10:47:29.268+00:00 n2 | n1 suspect ...``), so the logs of
several agents can be interleaved and still read; ``--log-format json``
writes one JSON object per line instead, for a log shipper.

The client that reads a running agent's debug endpoint is ``client.py``.
"""

from __future__ import annotations

__all__ = [
    "NO_KEYRING",
    "agent_config",
    "configure_logging",
    "reload_keyring",
    "run_agent",
]

import asyncio
import datetime
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gossamer.admin.keys import KeyringChanged
from gossamer.errors import ConfigError, LocalError
from gossamer.failure.names import NameClash
from gossamer.membership.members import Status
from gossamer.runtime.control import ControlServer, Handler
from gossamer.runtime.keyring import (
    Keyring,
    KeyringError,
    decode_key,
    fingerprint,
    load_keyring,
    save_keyring,
)
from gossamer.runtime.node import NameInUse, Node
from gossamer.runtime.nodeconfig import NodeConfig, config_from_mapping, read_toml

log = logging.getLogger("gossamer.agent")

NO_KEYRING = (
    "no keyring: packets would be neither encrypted nor authenticated.  Create one with "
    "`gossamer keygen --keyring FILE` and pass --keyring FILE (the same file on every node), "
    "or pass --plaintext to run unencrypted on a trusted network such as loopback"
)
"""What the agent says when it is given neither a keyring nor ``--plaintext``."""

_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


# -------------------------------------------------------------------- configuration


def agent_config(
    *,
    name: str | None = None,
    bind: str | None = None,
    advertise: str | None = None,
    join: Sequence[str] = (),
    keyring_file: str | None = None,
    plaintext: bool = False,
    cluster: str | None = None,
    http: str | None = None,
    http_hosts: tuple[str, ...] | None = None,
    config_file: str | None = None,
    preset: str | None = None,
    metadata: str | None = None,
    data_dir: str | None = None,
) -> tuple[NodeConfig, str | None]:
    """The agent's :class:`NodeConfig` and the keyring file to reload on SIGHUP.

    The TOML file (see :func:`gossamer.runtime.nodeconfig.load_toml`) gives the base;
    every argument that is set wins over it.  ``join`` holds addresses or
    comma-separated lists of them.  ``keyring_file`` and ``plaintext`` each
    replace whatever security the file chose.  Raises
    :class:`~gossamer.errors.ConfigError` with a message for the operator.
    """
    if keyring_file is not None and plaintext:
        raise ConfigError("--keyring and --plaintext are exclusive: choose one")
    raw: dict[str, Any] = {}
    where = "the command line"
    if config_file is not None:
        where = config_file
        raw = read_toml(config_file)
    if name is None and "name" not in raw:
        raise ConfigError("the node needs a name: --name NAME (or name = ... in --config)")
    if preset is not None:
        raw["preset"] = preset
    overrides: dict[str, Any] = {
        "name": name,
        "bind": bind,
        "advertise": advertise,
        "cluster": cluster,
        "http": http,
        "http_hosts": http_hosts,
        "data_dir": data_dir,
    }
    seeds = tuple(part.strip() for item in join for part in item.split(",") if part.strip())
    if seeds:
        overrides["seeds"] = seeds
    if metadata is not None:
        overrides["metadata"] = metadata.encode("utf-8")
    if keyring_file is not None:
        raw.pop("keyring_file", None)
        raw.pop("plaintext", None)
        try:
            overrides["keyring"] = load_keyring(keyring_file)
        except KeyringError as exc:
            raise ConfigError(f"--keyring: {exc}") from None
    elif plaintext:
        raw.pop("keyring_file", None)
        overrides["plaintext"] = True
    else:
        keyring_file = raw.get("keyring_file")
        if keyring_file is not None and not isinstance(keyring_file, str):
            raise ConfigError(f"{where}: keyring_file must be a path (a string)")
        if keyring_file is None and raw.get("plaintext") is not True:
            raise ConfigError(NO_KEYRING)
    return config_from_mapping(raw, where=where, **overrides), keyring_file


# -------------------------------------------------------------------- logging


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in the local zone, to the millisecond: ``2026-11-21T10:47:29.268+00:00``."""
    moment = datetime.datetime.fromtimestamp(record.created).astimezone()
    return moment.isoformat(timespec="milliseconds")


class _LineFormatter(logging.Formatter):
    """``2026-11-21T10:47:29.268+00:00 n2 | message``; levels other than INFO are named."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        text = f"{_timestamp(record)} {self._node} | {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``node``, ``logger``, ``message``
    (and ``exception`` when there is one)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "node": self._node,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


_FORMATS = {"text": _LineFormatter, "json": _JsonFormatter}


def configure_logging(node: str, level: str = "info", log_format: str = "text") -> None:
    """Send logs to stderr, one line each, for ``node``: text prefixed with the
    node's name, or JSON objects (``log_format="json"``).

    ``level`` (``debug``, ``info``, ``warning``) applies to gossamer's
    loggers; other libraries log warnings and errors only.
    """
    if level not in _LOG_LEVELS:
        raise ConfigError(f"log level must be one of {sorted(_LOG_LEVELS)}, got {level!r}")
    if log_format not in _FORMATS:
        raise ConfigError(f"log format must be one of {sorted(_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATS[log_format](node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("gossamer").setLevel(_LOG_LEVELS[level])


# -------------------------------------------------------------------- the agent


def reload_keyring(keyring: Keyring, path: str) -> str:
    """Make ``keyring`` hold exactly the keys of the file at ``path``, its primary first.

    New keys are installed before the primary changes and old ones removed
    last, so at no moment does the node lose a key a peer may still seal
    with.  Returns a description for the log (fingerprints only).  Raises
    :class:`~gossamer.runtime.keyring.KeyringError` if the file cannot be read; the
    keyring is then unchanged.
    """
    wanted = load_keyring(path)
    before = set(keyring.keys)
    for key in wanted.keys:
        keyring.install(key)
    keyring.use(wanted.primary)
    removed = [key for key in keyring.keys if key not in set(wanted.keys)]
    for key in removed:
        keyring.remove(key)
    added = [key for key in wanted.keys if key not in before]
    parts = [f"primary {fingerprint(keyring.primary)}", f"keys {keyring.fingerprints()}"]
    if added:
        parts.append(f"installed {[fingerprint(k) for k in added]}")
    if removed:
        parts.append(f"removed {[fingerprint(k) for k in removed]}")
    if not added and not removed:
        parts.append("no key added or removed")
    return ", ".join(parts)


async def run_agent(
    config: NodeConfig,
    *,
    keyring_file: str | None = None,
    control: Path | None = None,
    groups: Sequence[tuple[str, str]] = (),
    names: Sequence[tuple[str, str]] = (),
) -> int:
    """Run one node until SIGTERM or SIGINT, then leave and stop; the exit status.

    0 after a signal, 1 if the node cannot start (a port taken), 2 for a
    configuration the node refuses, 3 when another live node holds the name
    and refuted this one.  ``control`` is the control channel's socket
    (``runtime/control.py``); None serves none.  ``keyring_file`` is the file SIGHUP
    reloads into ``config.keyring``.  Signal handlers are installed on the
    running loop, so this runs in the main thread (``asyncio.run``).
    ``groups`` and ``names`` are ``(group, member)`` to join and ``(name,
    member)`` to register once started (a name another node holds is logged).
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    leaving: asyncio.Task[None] | None = None
    signals_seen = 0

    def on_stop(sig: signal.Signals) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("%s: leaving the cluster", sig.name)
            stopping.set()
        elif leaving is not None and not leaving.done():
            log.warning("%s again: stopping without waiting for the leave to spread", sig.name)
            leaving.cancel()

    def on_hup() -> None:
        keyring = config.keyring
        if keyring is None or keyring_file is None:
            log.warning("SIGHUP: this node runs without a keyring file; nothing to reload")
            return
        # The sealer on the engine thread reads the keyring's cipher tuple,
        # which each change replaces whole: it always sees a consistent set.
        try:
            log.info(
                "SIGHUP: keyring %s reloaded: %s",
                keyring_file,
                reload_keyring(keyring, keyring_file),
            )
        except KeyringError as exc:
            log.error("SIGHUP: keyring unchanged (still %s): %s", keyring.fingerprints(), exc)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in handled[:2]:
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        try:
            node = await Node.start(config)
        except LocalError as exc:
            log.error("cannot start %s: %s", config.name, exc)
            return 2
        except OSError as exc:
            log.error("cannot start %s on %s: %s", config.name, config.bind, exc.strerror or exc)
            return 1
        watch = asyncio.ensure_future(_name_lost(node))
        keeper = asyncio.ensure_future(_keep_keyring(node, keyring_file))
        stop = asyncio.ensure_future(stopping.wait())
        server = None
        try:
            if control is not None:
                server = ControlServer(control, _commands(node, keyring_file, stopping))
                try:
                    await server.start()
                except (LocalError, OSError) as exc:
                    log.error("cannot serve the control channel on %s: %s", control, exc)
                    return 2
            _log_ready(node, keyring_file, control)
            if names and config.seeds:
                # What the node knows decides a registration: learn the cluster first.
                await node.wait_joined(timeout_s=10.0)
                await asyncio.sleep(0.5)
            try:
                _register(node, groups, names)
            except LocalError as exc:
                log.error("cannot join or register: %s", exc)
                return 2
            await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done() and watch.result() is not None:
                log.error("stopping: %s", watch.result())
                return 3
            leaving = asyncio.ensure_future(node.leave())
            await asyncio.wait({leaving})  # done, or cancelled by a second signal
            if leaving.cancelled():
                log.info("stopping before the leave has spread")
            elif leaving.exception() is not None:
                log.warning("leaving failed: %s", leaving.exception())
            else:
                log.info("left the cluster")
        finally:
            watch.cancel()
            keeper.cancel()
            stop.cancel()
            if server is not None:
                await server.stop()
            await node.stop()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


async def _name_lost(node: Node) -> NameInUse | None:
    """Wait until another live node has refuted this one's name (None if the node stops)."""
    async for event in node.events():
        if isinstance(event, NameClash) and not event.kept:
            return NameInUse(node.name, event.other)
    return None


def _register(
    node: Node, groups: Sequence[tuple[str, str]], names: Sequence[tuple[str, str]]
) -> None:
    for group, member in groups:
        node.groups.join(group, member)
        log.info("joined group %s as %s", group, member)
    for name, member in names:
        claim = node.names.register(name, member)
        if claim.registered:
            log.info("registered %s for %s", name, member)
        else:
            log.warning("%s is held by %s (%s): not registered", name, claim.node, claim.member)


def _commands(node: Node, keyring_file: str | None, stopping: asyncio.Event) -> Handler:
    """What the control channel's commands do on this agent."""

    async def handle(command: str, args: dict[str, Any]) -> Any:
        if command == "join":
            addresses = args.get("addresses")
            if not isinstance(addresses, list) or not addresses:
                raise LocalError("join: give one or more host:port addresses")
            answered = await node.join(addresses, timeout_s=float(args.get("timeout_s", 10.0)))
            log.info("control: join %s: %d answered", addresses, len(answered))
            return {"answered": answered}
        if command == "leave":
            log.info("control: leaving the cluster")
            stopping.set()
            return {"leaving": node.name}
        if command == "force-leave":
            name = args.get("name")
            await node.force_leave(name)  # type: ignore[arg-type]
            log.info("control: forced %s to leave", name)
            return {"name": name}
        if command == "drain":
            draining = args.get("draining")
            if not isinstance(draining, bool):
                raise LocalError("drain: draining must be true or false")
            await (node.drain() if draining else node.undrain())
            log.info("control: %s", "draining" if draining else "no longer draining")
            return {"name": node.name, "draining": draining}
        if command == "tags":
            tags = await node.update_tags(args.get("set") or {}, args.get("delete") or ())
            log.info("control: tags now %s", tags)
            return {"tags": tags}
        if command == "keys":
            if args.get("op") in ("install", "use", "remove") and not args.get("local"):
                return await _cluster_keys(node, args)
            return _keys(node, keyring_file, args)
        raise LocalError(f"unknown command {command!r}")

    return handle


def _keyring_and_key(node: Node, args: dict[str, Any]) -> tuple[Keyring, bytes | None]:
    """The node's keyring and the request's key (None for ``list``); LocalError otherwise."""
    keyring = node.config.keyring
    if keyring is None:
        raise LocalError("this node runs in plaintext: it has no keyring")
    op = args.get("op")
    if op == "list":
        return keyring, None
    if op not in ("install", "use", "remove"):
        raise LocalError(f"keys: list, install, use or remove, not {op!r}")
    try:
        return keyring, decode_key(args.get("key", ""))
    except KeyringError as exc:
        raise LocalError(str(exc)) from None


def _keys(node: Node, keyring_file: str | None, args: dict[str, Any]) -> dict[str, Any]:
    """``keys list|install|use|remove`` on this node's keyring, written back to its file."""
    keyring, key = _keyring_and_key(node, args)
    op = args.get("op")
    if key is not None:
        if keyring_file is None:
            raise LocalError("this node's keyring has no file to keep a change in (--keyring)")
        try:
            getattr(keyring, str(op))(key)
            save_keyring(keyring_file, keyring)
        except KeyringError as exc:
            raise LocalError(str(exc)) from None
        log.info("control: keys %s %s: keys now %s", op, fingerprint(key), keyring.fingerprints())
    return {"primary": fingerprint(keyring.primary), "keys": keyring.fingerprints()}


async def _cluster_keys(node: Node, args: dict[str, Any]) -> dict[str, Any]:
    """``keys install|use|remove`` on every live member (``admin/keys.py``); the
    agents write their files on the change (``_keep_keyring``)."""
    _, key = _keyring_and_key(node, args)
    assert key is not None
    answers = await node.change_keys(str(args.get("op")), key)
    members = sorted(m.name for m in node.members() if m.status is Status.ALIVE)
    log.info("control: keys %s %s on the cluster: %s", args.get("op"), fingerprint(key), answers)
    return {
        "answers": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in answers.items()},
        "missing": [name for name in members if name not in answers],
    }


async def _keep_keyring(node: Node, keyring_file: str | None) -> None:
    """Write the keyring file whenever the keyring changes (a cluster-wide change)."""
    keyring = node.config.keyring
    if keyring is None or keyring_file is None:
        return
    async for event in node.events():
        if isinstance(event, KeyringChanged):
            try:
                save_keyring(keyring_file, keyring)
            except KeyringError as exc:
                log.error("keyring changed but %s could not be written: %s", keyring_file, exc)


def _log_ready(node: Node, keyring_file: str | None, control: Path | None = None) -> None:
    config = node.config
    seeds = ", ".join(config.seeds) if config.seeds else "none: starting a new cluster"
    log.info(
        "agent %s (pid %d) gossips at %s (UDP and TCP), cluster %r, joining via %s",
        node.name,
        os.getpid(),
        node.address,
        config.cluster,
        seeds,
    )
    if node.debug_url is None:  # the engine announces the endpoint when there is one
        log.info("no debug endpoint (add --http 127.0.0.1:PORT for one)")
    if config.keyring is not None:
        source = f"keyring {keyring_file}" if keyring_file else "keyring"
        log.info(
            "%s: primary %s, %d key(s) %s; SIGHUP reloads it",
            source,
            fingerprint(config.keyring.primary),
            len(config.keyring),
            config.keyring.fingerprints(),
        )
    if control is not None:
        log.info("control channel at %s (gossamer join, leave, force-leave, tags, keys)", control)
    log.info("SIGTERM or Ctrl-C leaves the cluster and stops")
