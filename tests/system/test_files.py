"""The data dir is its owner's alone: directories 0700, files 0600 (the event log and its WAL,
snapshots, the token), a planted lock symlink is never followed, and a token file others can
read or a symlinked one is refused (the trust-boundaries issue, files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from engine_helpers import CTX, Clock, shop

from bandit import Engine
from bandit.domain.errors import CartwheelError, StorageError
from bandit.http.tokens import data_dir_token


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_everything_cartwheel_writes_is_the_owners_alone(tmp_path):
    old = os.umask(0o022)  # a usual umask: files 0644 and dirs 0755 unless cartwheel says
    try:
        engine = Engine.open(shop(), tmp_path / "data", seed=0, clock=Clock())
        for i in range(50):
            engine.decide(f"v{i}", CTX)
        engine.snapshot()
        wal = tmp_path / "data" / "events.sqlite3-wal"
        assert wal.exists()  # while the engine is open
        token, _ = data_dir_token(tmp_path / "data")
        files = {p.name: _mode(p) for p in (tmp_path / "data").rglob("*") if p.is_file()}
        dirs = {str(p): _mode(p) for p in [tmp_path / "data", *(tmp_path / "data").rglob("*")]
                if p.is_dir()}
        engine.close()
    finally:
        os.umask(old)
    assert set(files) >= {"events.sqlite3", "events.sqlite3-wal", "events.sqlite3-shm",
                          "lock", "token"}
    assert any(n.endswith(".npz") for n in files) and any(n.endswith(".json") for n in files)
    assert files == {name: 0o600 for name in files}
    assert dirs == {name: 0o700 for name in dirs} and len(dirs) >= 2


def test_an_existing_open_data_dir_is_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "events.sqlite3").touch(mode=0o644)
    os.chmod(data, 0o755)
    os.chmod(data / "events.sqlite3", 0o644)
    Engine.open(shop(), data, seed=0, clock=Clock()).close()
    assert _mode(data) == 0o700 and _mode(data / "events.sqlite3") == 0o600


def test_a_lock_symlink_is_never_followed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me")
    (data / "lock").symlink_to(target)
    with pytest.raises(StorageError, match="is a symbolic link: cartwheel does not follow it"):
        Engine.open(shop(), data, seed=0, clock=Clock())
    assert target.read_text() == "do not truncate me"


def test_a_token_file_others_can_read_or_a_symlinked_one_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    token = data / "token"
    token.write_text("planted\n")
    token.chmod(0o644)
    with pytest.raises(CartwheelError, match=r"mode 644.*chmod 600"):
        data_dir_token(data)
    token.chmod(0o600)
    assert data_dir_token(data)[0] == "planted"
    token.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("x\n")
    elsewhere.chmod(0o600)
    token.symlink_to(elsewhere)
    with pytest.raises(CartwheelError, match="symbolic link"):
        data_dir_token(data)
