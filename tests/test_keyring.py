"""The keyring and packet sealing: round trips, refusals by reason, rotation, files, CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.cli import main
from gossamer.errors import ConfigError, LocalError, RemoteError
from gossamer.runtime.keyring import (
    KEY_BYTES,
    NONCE_BYTES,
    SEALED_OVERHEAD,
    Keyring,
    KeyringError,
    Sealer,
    SealError,
    decode_key,
    encode_key,
    fingerprint,
    generate_key,
    load_keyring,
    save_keyring,
)

# Fixed keys make failures reproducible; generate_key() is tested on its own.
K1 = bytes(range(32))
K2 = bytes(range(32, 64))
K3 = bytes(range(64, 96))
CLUSTER = "prod-eu"


def sealed(*keys: bytes, cluster: str = CLUSTER) -> Sealer:
    return Sealer(cluster, Keyring(keys))


def reason_of(sealer: Sealer, packet: bytes) -> str:
    with pytest.raises(SealError) as refused:
        sealer.open(packet)
    assert refused.value.reason in str(refused.value)
    return refused.value.reason


# -- keys ---------------------------------------------------------------------


def test_generate_key_is_random_and_encodes_to_44_chars() -> None:
    first, second = generate_key(), generate_key()
    assert len(first) == KEY_BYTES and first != second
    text = encode_key(first)
    assert len(text) == 44
    assert decode_key(text) == first
    assert decode_key(f"  {text[:20]}\n{text[20:]}\n") == first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", "base64"),
        ("AAAA", "got 3 bytes"),
        (base64.b64encode(bytes(33)).decode(), "got 33 bytes"),
        ("", "got 0 bytes"),
        ("é" * 44, "base64"),
    ],
)
def test_decode_key_refuses(text: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as refused:
        decode_key(text)
    assert isinstance(refused.value, LocalError) and isinstance(refused.value, ValueError)


def test_decode_key_message_names_the_expected_size() -> None:
    with pytest.raises(KeyringError, match=r"32 bytes, base64-encoded \(44 characters\)"):
        decode_key("AAAA")


# -- keyring ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "at least one"),
        ([bytes(31)], "32 bytes, got 31"),
        ([bytes(33)], "32 bytes, got 33"),
        ([K1, bytes(16)], "32 bytes, got 16"),
        ([bytearray(K1)], "must be bytes, got bytearray"),
        (["x" * 32], "must be bytes, got str"),
        ([K1, K2, K1], "once"),
        (K1, "sequence of keys"),
    ],
)
def test_keyring_refuses(keys: list[bytes], message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring(keys)


def test_keyring_install_use_remove() -> None:
    ring = Keyring([K1])
    assert ring.primary == K1 and list(ring.keys) == [K1] and len(ring) == 1
    ring.install(K2)
    ring.install(K2)  # again: a no-op
    assert list(ring.keys) == [K1, K2]
    ring.install(K3)
    ring.use(K3)
    assert ring.primary == K3 and list(ring.keys) == [K3, K1, K2]
    ring.remove(K1)
    assert list(ring.keys) == [K3, K2] and len(ring) == 2
    assert ring.fingerprints() == [fingerprint(K3), fingerprint(K2)]


@pytest.mark.parametrize(
    ("action", "key", "message"),
    [
        ("remove", K1, "primary"),
        ("remove", K3, "not installed"),
        ("use", K3, "not installed"),
        ("install", bytes(5), "32 bytes"),
        ("use", b"short", "32 bytes"),
    ],
)
def test_keyring_refuses_changes(action: str, key: bytes, message: str) -> None:
    ring = Keyring([K1, K2])
    with pytest.raises(KeyringError, match=message):
        getattr(ring, action)(key)
    assert ring.keys == (K1, K2)


def test_repr_never_shows_key_material() -> None:
    ring = Keyring([K1, K2, K3])
    shown = repr(ring) + repr(Sealer(CLUSTER, ring)) + str(ring.fingerprints())
    assert shown.startswith(f"Keyring(3 keys, primary {fingerprint(K1)}")
    for key in (K1, K2, K3):
        for form in (encode_key(key), key.hex(), repr(key), key.hex()[:16]):
            assert form not in shown
    assert fingerprint(K1) == hashlib.sha256(K1).hexdigest()[:8]


# -- sealing ------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", b"hello gossip", bytes(range(256)) * 5])
@pytest.mark.parametrize("encrypted", [True, False])
def test_round_trip(data: bytes, encrypted: bool) -> None:
    sender = sealed(K1) if encrypted else Sealer(CLUSTER, None)
    receiver = sealed(K1) if encrypted else Sealer(CLUSTER, None)
    packet = sender.seal(data)
    assert len(packet) == len(data) + sender.overhead
    assert sender.encrypted is encrypted
    for form in (packet, bytearray(packet), memoryview(packet)):
        opened = receiver.open(form)
        assert opened == data and type(opened) is bytes


def test_overhead_and_nonces() -> None:
    sender = sealed(K1)
    assert sender.overhead == SEALED_OVERHEAD == 29
    assert Sealer(CLUSTER, None).overhead == 1
    # A fresh nonce every time: the same data never seals to the same bytes.
    assert len({sender.seal(b"same") for _ in range(50)}) == 50
    assert b"secret payload" not in sender.seal(b"secret payload")


def test_nonces_never_repeat_across_batches_and_threads() -> None:
    # Nonces come from the operating system a batch at a time; every seal
    # takes its own, whichever thread seals and however many batches pass.
    sender = sealed(K1)
    per_thread = 1_000
    seen: list[list[bytes]] = [[] for _ in range(4)]

    def seal_many(out: list[bytes]) -> None:
        for _ in range(per_thread):
            out.append(sender.seal(b"x")[1 : 1 + NONCE_BYTES])

    threads = [threading.Thread(target=seal_many, args=(out,)) for out in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    nonces = [nonce for out in seen for nonce in out]
    assert len(nonces) == len(set(nonces)) == 4 * per_thread


def test_open_accepts_memoryview_slices_and_other_formats() -> None:
    packet = sealed(K1).seal(b"data")
    framed = memoryview(b"junk" + packet + b"junk")[4:-4]
    assert sealed(K1).open(framed) == b"data"
    words = memoryview(bytearray(packet + bytes(-len(packet) % 4))).cast("I")
    with pytest.raises(SealError):  # padded, so the tag fails, but only SealError
        sealed(K1).open(words)


@pytest.mark.parametrize(
    ("sender", "receiver", "reason"),
    [
        (sealed(K1), sealed(K2), "decrypt"),
        (sealed(K1), sealed(K1, cluster="prod-us"), "decrypt"),
        (sealed(K1), Sealer(CLUSTER, None), "sealed"),
        (Sealer(CLUSTER, None), sealed(K1), "plaintext"),
    ],
    ids=["wrong-key", "other-cluster", "plaintext-node", "sealed-node"],
)
def test_refusals(sender: Sealer, receiver: Sealer, reason: str) -> None:
    assert reason_of(receiver, sender.seal(b"hello")) == reason


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x01", b"\x01" + bytes(27), b"\x02hello", b"\xffhello", b"\x7f"],
)
def test_format_errors(packet: bytes) -> None:
    assert reason_of(sealed(K1), packet) == "format"


def test_plaintext_node_refuses_unknown_formats_too() -> None:
    assert reason_of(Sealer(CLUSTER, None), b"") == "format"
    assert reason_of(Sealer(CLUSTER, None), b"\x05x") == "format"
    assert Sealer(CLUSTER, None).open(b"\x00") == b""


def test_seal_error_is_a_remote_error_with_reason() -> None:
    with pytest.raises(RemoteError) as refused:
        sealed(K1).open(b"")
    assert isinstance(refused.value, SealError)
    assert refused.value.reason == "format"
    assert str(refused.value).startswith("format:")


def test_tampering_any_byte_is_refused() -> None:
    sender, receiver = sealed(K1), sealed(K1)
    packet = sender.seal(b"membership update")
    for index in range(len(packet)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(packet)
            tampered[index] ^= mask
            with pytest.raises(SealError):
                receiver.open(bytes(tampered))


@given(data=st.binary(max_size=64), index=st.integers(min_value=0), mask=st.integers(1, 255))
def test_tampering_property(data: bytes, index: int, mask: int) -> None:
    packet = bytearray(sealed(K1).seal(data))
    packet[index % len(packet)] ^= mask
    with pytest.raises(SealError):
        sealed(K1).open(packet)


_FUZZ_SEALERS = [sealed(K1), sealed(K1, K2), Sealer(CLUSTER, None)]
_PACKETS = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda kind, rest: bytes([kind]) + rest,
        st.sampled_from([0, 1, 2, 255]),
        st.binary(max_size=80),
    ),
)


@given(packet=_PACKETS, which=st.sampled_from(range(len(_FUZZ_SEALERS))))
def test_open_raises_only_seal_error(packet: bytes, which: int) -> None:
    sealer = _FUZZ_SEALERS[which]
    try:
        opened = sealer.open(packet)
    except SealError as exc:
        assert exc.reason in {"decrypt", "plaintext", "sealed", "format"}
    else:
        # Only a plaintext node opens random bytes, and then only 0x00 packets.
        assert not sealer.encrypted and packet[0] == 0 and opened == packet[1:]


@given(data=st.binary(max_size=300))
def test_round_trip_property(data: bytes) -> None:
    assert sealed(K1, K2).open(sealed(K2, K1).seal(data)) == data


@pytest.mark.parametrize(
    "cluster", ["", "x" * 65, "caf\u00e9", "tab\there", "new\nline", b"bytes", None]
)
def test_sealer_refuses_bad_cluster_names(cluster: object) -> None:
    with pytest.raises(ConfigError):
        Sealer(cluster, None)  # type: ignore[arg-type]


def test_sealer_accepts_edge_cluster_names() -> None:
    for cluster in ("a", "x" * 64, " !~", "prod/eu-1.example:7946"):
        assert Sealer(cluster, Keyring([K1])).cluster == cluster


def test_rotation_without_downtime() -> None:
    ring_a, ring_b = Keyring([K1]), Keyring([K1, K2])
    a, b = Sealer(CLUSTER, ring_a), Sealer(CLUSTER, ring_b)

    def talk() -> tuple[bool, bool]:
        """Whether A opens B's packets, and B opens A's."""
        results = []
        for sender, receiver in ((b, a), (a, b)):
            try:
                receiver.open(sender.seal(b"ping"))
                results.append(True)
            except SealError as exc:
                assert exc.reason == "decrypt"
                results.append(False)
        return results[0], results[1]

    assert talk() == (True, True)  # B holds the new key as a secondary
    ring_b.use(K2)  # changes take effect at once, no new Sealer
    assert talk() == (False, True)  # too early: A has not installed it
    ring_a.install(K2)
    assert talk() == (True, True)
    old_packet = a.seal(b"sealed with the old key")
    ring_a.use(K2)
    assert talk() == (True, True)
    ring_a.remove(K1)
    ring_b.remove(K1)
    assert talk() == (True, True)
    assert reason_of(a, old_packet) == "decrypt"
    assert reason_of(b, old_packet) == "decrypt"


# -- keyring files ------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    save_keyring(path, Keyring([K2, K1, K3]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == [encode_key(K2), encode_key(K1), encode_key(K3)]
    assert load_keyring(path).keys == (K2, K1, K3)
    assert load_keyring(str(path)).primary == K2
    # Saving again replaces the file and leaves no temporary behind.
    save_keyring(str(path), Keyring([K3]))
    assert load_keyring(path).keys == (K3,)
    assert os.listdir(tmp_path) == ["keyring.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        ("[]", "non-empty JSON array"),
        ('{"keys": []}', "non-empty JSON array"),
        ('"a string"', "non-empty JSON array"),
        (json.dumps([encode_key(K1), 42]), "entry 1: a key is a base64 string, got int"),
        (json.dumps([encode_key(K1), encode_key(K2), "AAAA"]), "entry 2: .*got 3 bytes"),
        (json.dumps(["!!!"]), "entry 0: .*base64"),
        (json.dumps([encode_key(K1), encode_key(K1)]), "once"),
    ],
)
def test_load_keyring_refuses(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "keyring.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(KeyringError, match=message) as refused:
        load_keyring(path)
    assert str(path) in str(refused.value)


def test_save_keyring_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot write"):
        save_keyring(tmp_path / "nowhere" / "keyring.json", Keyring([K1]))


# -- gossamer keygen ----------------------------------------------------------


def test_keygen_prints_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    out = capsys.readouterr().out
    assert len(decode_key(out)) == KEY_BYTES
    assert main(["keygen"]) == 0
    assert capsys.readouterr().out != out


def test_keygen_creates_refuses_and_installs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keyring.json"
    assert main(["keygen", "--keyring", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    first = load_keyring(path)
    assert len(first) == 1 and first.fingerprints()[0] in captured.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    before = path.read_bytes()
    assert main(["keygen", "--keyring", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gossamer keygen: ") and "--install" in err
    assert path.read_bytes() == before

    assert main(["keygen", "--keyring", str(path), "--install"]) == 0
    grown = load_keyring(path)
    assert grown.primary == first.primary and len(grown) == 2
    assert grown.fingerprints()[1] in capsys.readouterr().err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--install"], None, "needs --keyring"),
        (["--keyring", "{path}", "--install"], "[]", "non-empty JSON array"),
        (["--keyring", "{dir}/missing/keyring.json"], None, "cannot write"),
    ],
)
def test_keygen_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / "keyring.json"
    if content is not None:
        path.write_text(content)
    argv = [
        "keygen",
        *(arg.replace("{path}", str(path)).replace("{dir}", str(tmp_path)) for arg in args),
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("gossamer keygen: ") and message in captured.err
