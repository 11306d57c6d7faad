"""The sans-IO rule, checked on the source: protocol cores do no I/O.

Cores never import asyncio, socket, time, threading, selectors or aiohttp,
and never call the module-level functions of ``random`` (they are given a
``random.Random``).  The simulator and the pure support modules are held to
the same rule, since the simulator's determinism depends on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gossamer"

# Cores (DESIGN.md's "protocol modules") and the pure modules they stand on.
GUARDED = [
    "membership",
    "failure",
    "crdt",
    "clocks",
    "ring",
    "ring.py",
    "core.py",
    "sim",
    "transmit.py",
    "lab",
    "effects.py",
    "wire.py",
    "ids.py",
    "errors.py",
    "config.py",
]

FORBIDDEN_MODULES = {
    "asyncio",
    "socket",
    "time",
    "threading",
    "selectors",
    "aiohttp",
    # Other ways to reach the clock or the OS's entropy.
    "os",
    "secrets",
    "uuid",
    "datetime",
}


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every line of ``source`` that imports I/O or clocks, or uses the global random."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    random_names: set[str] = set()  # names bound to the random module itself
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN_MODULES:
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
                if alias.name == "random":
                    random_names.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
            if node.module == "random":
                for alias in node.names:
                    # Only the Random class (and SystemRandom's absence) is allowed.
                    if alias.name != "Random":
                        found.append(f"{filename}:{node.lineno}: from random import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in random_names
            and node.attr != "Random"
        ):
            found.append(f"{filename}:{node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "__import__":
                found.append(f"{filename}:{node.lineno}: __import__(...)")
            if name in ("Random", "SystemRandom") and not node.args and not node.keywords:
                # Random() with no seed draws from the OS: not reproducible.
                found.append(f"{filename}:{node.lineno}: {name}() without a seed")
            elif name == "SystemRandom":
                found.append(f"{filename}:{node.lineno}: SystemRandom")
    return found


def guarded_files() -> list[Path]:
    files: list[Path] = []
    for entry in GUARDED:
        path = PACKAGE / entry
        if path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
        elif path.is_file():
            files.append(path)
    return files


def test_guard_covers_the_cores_that_exist() -> None:
    names = {p.relative_to(PACKAGE).parts[0] for p in guarded_files()}
    assert {"clocks", "sim", "wire.py", "effects.py"} <= names


@pytest.mark.parametrize("path", guarded_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_does_no_io(path: Path) -> None:
    assert violations(path.read_text(), str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import socket as s",
        "import time",
        "from time import monotonic",
        "import threading",
        "import selectors",
        "from aiohttp import web",
        "import asyncio.events",
        "import random\nx = random.random()",
        "import random\nrandom.shuffle([1])",
        "import random as r\nr.choice([1])",
        "import random\nf = random.randint",
        "from random import choice",
        "from random import Random, shuffle",
        "__import__('time')",
        "import random\nrandom.Random()",
        "from random import Random\nRandom()",
        "import os\nos.urandom(4)",
        "import secrets",
        "import uuid",
        "from datetime import datetime",
        "import random\nrandom.SystemRandom(1)",
    ],
)
def test_guard_catches(source: str) -> None:
    assert violations(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import random\nrng = random.Random(1)\nrng.random()",
        "from random import Random\nRandom(3).choice([1])",
        "def f(rng):\n    return rng.shuffle([1])",
        "import heapq, hashlib",
        "from gossamer.clocks import VersionVector",
    ],
)
def test_guard_allows(source: str) -> None:
    assert violations(source) == []
