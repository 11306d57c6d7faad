"""What a wake-up costs: the datagram path warm, and as the first work after a sleep.

An idle node wakes about three times a second (its probe tick, the ping it
answers, the ack it gets) and sleeps in between.  This measures the code one
datagram goes through -- a ``Ping`` built, encoded, sealed, opened and
decoded -- and a single AES-GCM encrypt, each timed ``--reps`` times in a
tight loop (warm) and ``--reps`` times as the first thing done after
sleeping ``--sleep-ms`` (cold), and once more after sleeping and then
spinning ``--spin-ms`` on other code, which tells a slow clock after idling
(the spin would help) from evicted caches (it would not).

    python -m benchmarks.cold_start [--reps 200] [--sleep-ms 20] [--spin-ms 10]

prints one JSON object: ``packet_warm_us``, ``packet_cold_us``,
``packet_cold_after_spin_us``, ``aes_warm_us``, ``aes_cold_us``,
``aes_cold_after_spin_us`` (means, microseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import gossamer.parts  # noqa: F401  (registers every part's messages)
from gossamer.failure.swim import Ping
from gossamer.runtime.keyring import Keyring, Sealer, generate_key
from gossamer.wire import registry

_HEADER = bytes(15)  # a binary sender and a stamp, as the transport prefixes


def _packet_path() -> Callable[[], object]:
    sealer = Sealer("default", Keyring([generate_key()]))

    def path() -> object:
        packet = sealer.seal(_HEADER + registry.encode(Ping(12345, "n17")))
        return registry.decode(sealer.open(packet)[len(_HEADER) :], 1_400)

    return path


def _aes() -> Callable[[], object]:
    aead, nonce, data = AESGCM(os.urandom(32)), os.urandom(12), os.urandom(40)
    return lambda: aead.encrypt(nonce, data, None)


def _mean_us(work: Callable[[], object], reps: int, sleep_s: float, spin_s: float) -> float:
    clock, total = time.perf_counter, 0.0
    for _ in range(reps):
        if sleep_s:
            time.sleep(sleep_s)
        if spin_s:
            until = clock() + spin_s
            while clock() < until:
                pass
        start = clock()
        work()
        total += clock() - start
    return round(total / reps * 1e6, 1)


def measure(reps: int, sleep_ms: float, spin_ms: float) -> dict[str, float]:
    result: dict[str, float] = {}
    for name, work in (("packet", _packet_path()), ("aes", _aes())):
        work()  # every lazy set-up done before timing
        result[f"{name}_warm_us"] = _mean_us(work, reps, 0.0, 0.0)
        result[f"{name}_cold_us"] = _mean_us(work, reps, sleep_ms / 1e3, 0.0)
        result[f"{name}_cold_after_spin_us"] = _mean_us(work, reps, sleep_ms / 1e3, spin_ms / 1e3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200, help="timings of each kind")
    parser.add_argument("--sleep-ms", type=float, default=20.0, help="sleep before a cold one")
    parser.add_argument("--spin-ms", type=float, default=10.0, help="spin after the sleep")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.sleep_ms <= 0 or args.spin_ms <= 0:
        parser.error("--reps, --sleep-ms and --spin-ms must be positive")
    print(json.dumps(measure(args.reps, args.sleep_ms, args.spin_ms)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
