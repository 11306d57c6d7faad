"""The agent's control channel: a Unix socket only its own user can use.

``gossamer join``, ``leave``, ``force-leave``, ``tags`` and ``keys`` talk to a
running agent through it.  It never listens on the network: the socket lives
in a directory only the agent's user may enter (mode 0700), the socket
itself is mode 0600, and each connection's peer is checked with
``SO_PEERCRED`` (the same user, or root) before anything is read.

One request per connection, one JSON object per line each way::

    -> {"command": "join", "args": {"addresses": ["10.0.0.4:7946"]}}
    <- {"ok": true, "result": {"answered": ["10.0.0.4:7946"]}}
    <- {"ok": false, "error": "no member is named 'x'"}

A request is at most 64 KiB and must arrive within 10 s.  The handler's
:class:`~gossamer.errors.LocalError` becomes the error; anything else is
logged and answered as a failure.
"""

from __future__ import annotations

__all__ = ["ControlError", "ControlServer", "call", "default_path"]

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from gossamer.errors import LocalError

log = logging.getLogger("gossamer.control")

MAX_REQUEST_BYTES: Final = 64 * 1024
REQUEST_TIMEOUT_S: Final = 10.0
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""``(command, args) -> result``: what the agent does for each request."""


class ControlError(LocalError):
    """The control channel could not be reached, or the agent refused the command."""


def default_path(name: str) -> Path:
    """Where the agent called ``name`` listens unless told otherwise:
    ``$XDG_RUNTIME_DIR/gossamer/NAME.sock``, else ``/tmp/gossamer-UID/NAME.sock``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "gossamer" if runtime else Path(tempfile.gettempdir())
    if not runtime:
        base = base / f"gossamer-{os.getuid()}"
    return base / f"{name}.sock"


class ControlServer:
    """Serves ``handler`` on the Unix socket at ``path`` (see the module docstring)."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise LocalError(
                f"the control directory {directory} must belong to this user and be "
                "closed to others (chmod 700)"
            )
        with contextlib.suppress(FileNotFoundError):
            if _listening(self.path):
                raise LocalError(f"another agent already listens on {self.path}")
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer.get_extra_info("socket")):
                log.warning("control: refused a connection from another user")
                return
            line = await asyncio.wait_for(reader.readuntil(b"\n"), REQUEST_TIMEOUT_S)
            answer = await self._answer(line)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # a client that went away or sent too much: nothing to answer
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST_BYTES:
            return {"ok": False, "error": "the request is too large"}
        try:
            request = json.loads(line)
            command, args = request["command"], request.get("args", {})
            if not isinstance(command, str) or not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'expected {"command": NAME, "args": {...}}'}
        try:
            return {"ok": True, "result": await self._handler(command, args)}
        except LocalError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:
            log.exception("control: %s failed", command)
            return {"ok": False, "error": f"{command} failed; see the agent's log"}


def call(path: Path, command: str, args: dict[str, Any], *, timeout_s: float = 30.0) -> Any:
    """Send one command to the agent at ``path``; its result, or ControlError."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise ControlError(
            f"no agent listens on {path} (is it running, under this user? --control PATH "
            "names another socket)"
        ) from None
    except OSError as exc:
        raise ControlError(f"cannot reach the agent on {path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"the agent on {path} answered nothing readable") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ControlError(str(error or "the agent refused the command"))
    return answer.get("result")


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _same_user(sock: socket.socket | None) -> bool:
    if sock is None:
        return False
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # no peer credentials here: the socket's mode alone guards it
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    _, uid, _ = _CRED.unpack(raw)
    return uid in (0, os.getuid())
