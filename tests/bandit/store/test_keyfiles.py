"""The hash key lives apart from the event log: in ``<data dir>/hash_key`` (0600) or only in
``CARTWHEEL_HASH_KEY``; an older store's key moves out of the database, bytes and all, with
the same value (bandit.store.keyfiles)."""

from __future__ import annotations

import stat

import pytest
from engine_helpers import Clock, shop_doc

from bandit import Engine
from bandit.config.shop import parse_config
from bandit.domain.errors import CartwheelError
from bandit.domain.privacy import hash_visitor
from bandit.store.keyfiles import HASH_KEY_ENV

T0 = 1_700_000_000.0


def _unsalted(**sections):
    doc = shop_doc(holdout={"fraction": 0.5}, **sections)
    doc.pop("privacy")
    return parse_config(doc, source="test.toml")


def _raw(data_dir) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("events.sqlite3*")))


def test_a_new_store_keeps_its_key_in_a_private_file_not_in_the_log(tmp_path, monkeypatch):
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)
    engine = Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
    key = (tmp_path / "data" / "hash_key").read_text().strip()
    assert stat.S_IMODE((tmp_path / "data" / "hash_key").stat().st_mode) == 0o600
    assert engine.salt == key.encode() and len(key) == 32
    engine.decide("v1", {})
    assert engine.store.get_meta("salt") is None
    engine.close()
    assert key.encode() not in _raw(tmp_path / "data")
    again = Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
    assert again.salt == key.encode()  # the same key at the next start
    again.close()


def test_an_older_stores_key_moves_out_with_the_same_hashes(tmp_path, monkeypatch):
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)
    engine = Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
    engine.close()
    # as a store of the previous release: the key in meta, no file
    (tmp_path / "data" / "hash_key").unlink()
    old_key = "0123456789abcdef0123456789abcdef"
    engine = Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
    engine.close()
    (tmp_path / "data" / "hash_key").unlink()
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "events.sqlite3")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('salt', ?)", (old_key,))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert old_key.encode() in _raw(tmp_path / "data")
    engine = Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
    assert old_key.encode() not in _raw(tmp_path / "data")  # scrubbed from the bytes at once
    assert engine.salt == old_key.encode()  # the same key: holdout and caps unchanged
    d = engine.decide("returning", {})
    stored = engine.store.db.execute("SELECT visitor_hash FROM decisions WHERE event_id = ?",
                                     (d.event_id,)).fetchone()[0]
    assert stored == hash_visitor("returning", old_key.encode())
    assert (tmp_path / "data" / "hash_key").read_text().strip() == old_key
    assert engine.store.get_meta("salt") is None
    engine.close()
    assert old_key.encode() not in _raw(tmp_path / "data")  # scrubbed from the bytes


def test_the_environment_key_is_never_written_and_a_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(HASH_KEY_ENV, "from-the-environment-0123456789")
    engine = Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
    assert engine.salt == b"from-the-environment-0123456789"
    assert not (tmp_path / "data" / "hash_key").exists()
    engine.close()
    monkeypatch.delenv(HASH_KEY_ENV)
    (tmp_path / "data" / "hash_key").write_text("another-key\n")
    (tmp_path / "data" / "hash_key").chmod(0o600)
    monkeypatch.setenv(HASH_KEY_ENV, "from-the-environment-0123456789")
    with pytest.raises(CartwheelError, match="not the one"):
        Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))


def test_a_key_file_others_can_read_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "data" / "hash_key").write_text("planted\n")
    (tmp_path / "data" / "hash_key").chmod(0o644)
    with pytest.raises(CartwheelError, match="may be read or written by other users"):
        Engine.open(_unsalted(), tmp_path / "data", seed=0, clock=Clock(T0))
