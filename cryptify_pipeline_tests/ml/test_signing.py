"""Signing keys: read as hex or base64, never shown, and one key file per instance folder."""

import base64
import os
import stat
import subprocess
import sys
import time

import pytest

from cryptify_pipeline.ml.signing import (
    SigningKey,
    SigningKeyError,
    read_key_file,
    read_or_create_key_file,
)

SECRET = bytes(range(100, 140))  # 40 bytes


@pytest.mark.parametrize(
    "text",
    [
        SECRET.hex(),
        SECRET.hex().upper(),
        base64.b64encode(SECRET).decode(),
        base64.urlsafe_b64encode(SECRET).decode().rstrip("="),
        f"  {SECRET.hex()}\n",
    ],
)
def test_a_key_is_read_as_hex_or_base64(text):
    assert SigningKey.parse(text).mac(b"x") == SigningKey(SECRET).mac(b"x")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ab" * 31, "a key of 31 bytes is too short"),
        (base64.b64encode(b"k" * 20).decode(), "a key of 20 bytes is too short"),
        ("correct horse battery staple " * 3, "not hex or base64"),
        ("", "a key of 0 bytes is too short"),
    ],
)
def test_an_unusable_key_is_refused_without_showing_it(text, problem):
    with pytest.raises(SigningKeyError, match=problem) as refusal:
        SigningKey.parse(text)
    assert "at least 32 random bytes" in str(refusal.value)
    if text:
        assert text.strip() not in str(refusal.value)


def test_a_key_never_shows_its_value():
    key = SigningKey(SECRET)
    for shown in (repr(key), str(key), f"{key}"):
        assert SECRET.hex() not in shown and key.key_id in shown
    assert key.key_id != SigningKey.generate().key_id


def test_the_mac_separates_its_parts():
    key = SigningKey(SECRET)
    assert key.mac(b"ab", b"c") != key.mac(b"a", b"bc")
    assert key.mac(b"ab", b"c") == key.mac(b"ab", b"c")


def test_a_missing_key_file_is_created_private_and_then_reused(tmp_path):
    path = tmp_path / "instance" / "model-signing.key"
    key = read_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_key_file(path).key_id == key.key_id
    assert [p.name for p in path.parent.iterdir()] == ["model-signing.key"]  # no temp files


# Each process waits for the start file, so all of them race for the key file at once.
RACER = """
import sys, time
from pathlib import Path
from cryptify_pipeline.ml.signing import read_or_create_key_file
start = Path(sys.argv[2])
deadline = time.monotonic() + 60
while not start.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
print(read_or_create_key_file(Path(sys.argv[1])).key_id)
"""


def test_processes_creating_the_key_file_at_once_all_get_the_same_key(tmp_path):
    # Plain subprocesses with a timeout rather than a multiprocessing pool: a pool whose worker
    # dies waits forever, and once hung this test until pytest's timeout with nothing to show.
    path, start = tmp_path / "model-signing.key", tmp_path / "start"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(1.0)  # let the interpreters start and reach their wait
    start.touch()
    ids = []
    for racer in racers:
        try:
            out, err = racer.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            racer.kill()
            out, err = racer.communicate()
            pytest.fail(f"a racing process did not finish in 120 s: {err}")
        assert racer.returncode == 0, err
        ids.append(out.strip())
    assert len(set(ids)) == 1 and ids[0] == read_key_file(path).key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-signing.key", "start"]


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "model-signing.key"
    read_or_create_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match=f"{path} can be read by others .*chmod 600"):
        read_or_create_key_file(path)


def test_a_key_file_without_a_key_is_refused_without_showing_its_content(tmp_path):
    path = tmp_path / "model-signing.key"
    path.write_text("password123 not a key\n")
    os.chmod(path, 0o600)
    with pytest.raises(SigningKeyError, match=f"key file {path} holds no key") as refusal:
        read_key_file(path)
    assert "password123" not in str(refusal.value)
