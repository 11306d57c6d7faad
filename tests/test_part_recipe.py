"""The recipe for adding a part, followed by a test: a part that exists only here
joins the catalogue, and the config, the TOML loader, the runtime, the event
history, the endpoint's routes and metrics all follow, untouched."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gossamer import parts
from gossamer.config import check_int
from gossamer.effects import Effect, EventNote, Outbox, PartContext, PartFactory, PartSpec, TimerKey
from gossamer.errors import ConfigError
from gossamer.ids import Address, NodeId
from gossamer.membership.members import MemberJoined
from gossamer.observe import ApiError, ApiRequest, Family, Route, Sample, counter
from gossamer.runtime.node import Node
from gossamer.runtime.nodeconfig import NodeConfig, load_toml
from gossamer.testing.aio import eventually
from gossamer.wire import Message


@dataclasses.dataclass(frozen=True, slots=True)
class EchoConfig:
    """Step 5: the section, with presets and its own checks."""

    enabled: bool = True
    greeting: str = "hello"
    repeat: int = 1

    def __post_init__(self) -> None:
        check_int("EchoConfig", "repeat", self.repeat, 1, 3)

    @classmethod
    def lan(cls) -> EchoConfig:
        return cls()

    @classmethod
    def wan(cls) -> EchoConfig:
        return cls(repeat=2)

    @classmethod
    def local(cls) -> EchoConfig:
        return cls(greeting="hi")


@dataclasses.dataclass(frozen=True, slots=True)
class Echoed:
    """What the part emits: it greeted a member that joined."""

    member: str
    greeting: str


@dataclasses.dataclass(slots=True)
class EchoStats:
    """Step 3: counters whose fields say which metric they are."""

    greeted: int = counter("Members the echo part greeted.")


GREETINGS = Family("gossamer_echo_greetings", "Greetings said so far.", "gauge")


@dataclasses.dataclass(frozen=True, slots=True)
class EchoView:
    """Step 4: a frozen view with a route and a gauge."""

    greeting: str
    greeted: tuple[str, ...]

    def routes(self) -> Mapping[str, Route]:
        return {"echo": self._route}

    def _route(self, request: ApiRequest) -> dict[str, Any]:
        if "boom" in request.query:
            raise ApiError(400, "no booming here")
        return {"greeting": self.greeting, "greeted": list(self.greeted)}

    def samples(self) -> list[Sample]:
        return [Sample(GREETINGS, len(self.greeted))]


class EchoPart:
    """Step 3: the part.  It greets every member that joins, by event."""

    name = "echo"
    messages: tuple[type[Message], ...] = ()
    subscribes: tuple[type, ...] = (MemberJoined,)

    def __init__(self, me: NodeId, config: EchoConfig) -> None:
        self.me = me
        self.config = config
        self.stats = EchoStats()
        self._out = Outbox()
        self._view = EchoView(config.greeting, ())

    def start(self, now: float) -> None:
        pass

    def handle(self, sender: Address, message: Message, now: float) -> None:
        pass

    def on_timer(self, key: TimerKey, now: float) -> None:
        pass

    def on_stream_up(self, peer: Address, now: float) -> None:
        pass

    def on_stream_down(self, peer: Address, now: float) -> None:
        pass

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, MemberJoined) and event.member.name != self.me.name:
            self.stats.greeted += 1
            view = self._view
            self._view = EchoView(view.greeting, (*view.greeted, event.member.name))
            self._out.emit(Echoed(event.member.name, self.config.greeting))

    def drain(self) -> list[Effect]:
        return self._out.drain()

    def view(self) -> EchoView:
        return self._view

    def describe(self, event: object) -> EventNote | None:
        if isinstance(event, Echoed):
            return EventNote("echo", detail=f"{event.greeting}, {event.member}")
        return None


def _build(config: EchoConfig, context: PartContext) -> PartFactory | None:
    if not config.enabled:
        return None

    def make(me: NodeId, rng: random.Random) -> EchoPart:
        return EchoPart(me, config)

    return make


ECHO = PartSpec("echo", EchoConfig, _build)
"""Step 5: the spec."""


@pytest.fixture(autouse=True)
def _echo_in_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Step 6: one line in the catalogue.
    monkeypatch.setattr(parts, "CATALOGUE", (*parts.CATALOGUE, ECHO))
    yield


def test_the_section_follows_into_node_config_and_toml(tmp_path: Path) -> None:
    assert NodeConfig.local("a", plaintext=True).echo == EchoConfig.local()
    assert NodeConfig.wan("a", plaintext=True).echo == EchoConfig.wan()
    config = NodeConfig.lan("a", plaintext=True, echo=EchoConfig(greeting="ahoy"))
    assert config.echo.greeting == "ahoy" and config.sections["echo"] == config.echo
    with pytest.raises(ConfigError, match=r"NodeConfig\.echo must be a EchoConfig"):
        NodeConfig.lan("a", plaintext=True, echo="loud")
    path = tmp_path / "node.toml"
    path.write_text('name = "a"\nplaintext = true\n[echo]\ngreeting = "yo"\nrepeat = 2\n')
    assert load_toml(path).echo == EchoConfig(greeting="yo", repeat=2)
    path.write_text('name = "a"\nplaintext = true\n[echo]\nrepeat = 9\n')
    with pytest.raises(ConfigError, match="repeat"):
        load_toml(path)
    path.write_text('name = "a"\nplaintext = true\n[echo]\ngreting = "yo"\n')
    with pytest.raises(ConfigError, match=r"unknown field.*greting.*known: \['enabled'"):
        load_toml(path)


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    text = body.decode()
    return status, (json.loads(text) if text.startswith(("{", "[")) else text)


@pytest.mark.asyncio
async def test_the_runtime_and_the_endpoint_follow_a_new_part() -> None:
    a = await Node.start(
        NodeConfig.local("ea", plaintext=True, http="127.0.0.1:0", echo=EchoConfig(greeting="hey"))
    )
    nodes = [a]
    try:
        stream = a.events()
        nodes.append(await Node.start(NodeConfig.local("eb", plaintext=True, seeds=(a.address,))))

        async def echoed() -> Echoed:
            async for event in stream:
                if isinstance(event, Echoed):
                    return event
            raise AssertionError("the stream ended")

        assert await asyncio.wait_for(echoed(), 30) == Echoed("eb", "hey")
        url = a.debug_url
        assert url is not None

        def read(path: str) -> tuple[int, Any]:
            return _get(url + path)

        status, body = await asyncio.to_thread(read, "/api/echo")
        assert (status, body) == (200, {"greeting": "hey", "greeted": ["eb"]})
        status, body = await asyncio.to_thread(read, "/api/echo?boom=1")
        assert (status, body) == (400, {"error": "no booming here"})
        status, body = await asyncio.to_thread(read, "/api/counters")
        assert body["echo"] == {"greeted": 1}
        await eventually(
            lambda: any(e.kind == "echo" for e in a._engine.recent_events()), "the echo event"
        )
        status, body = await asyncio.to_thread(read, "/api/events")
        echo = [e for e in body["events"] if e["kind"] == "echo"]
        assert echo and echo[0]["member"] == "ea" and echo[0]["detail"] == "hey, eb"
        status, text = await asyncio.to_thread(read, "/metrics")
        assert "gossamer_echo_greeted_total 1.0" in text
        assert "gossamer_echo_greetings 1.0" in text
    finally:
        for node in reversed(nodes):
            await node.stop()
