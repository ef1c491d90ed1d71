"""Dashboard sessions and secrets (bandit.http.sessions, bandit.http.tokens): sessions expire
and close on the server, one-time codes work once, wrong secrets back off, and configured
secrets that are short or in the config file are warned about."""

from __future__ import annotations

import logging

from engine_helpers import shop

from bandit.http import tokens
from bandit.http.sessions import CODE_TTL_S, FREE_FAILURES, SESSION_TTL_S, Sessions


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_a_session_lives_its_ttl_and_ends_when_closed():
    clock = Clock()
    s = Sessions(clock)
    sid = s.open()
    clock.t = SESSION_TTL_S - 1
    assert s.valid(sid)
    clock.t = SESSION_TTL_S + 1
    assert not s.valid(sid)
    other = s.open()
    s.close(other)
    assert not s.valid(other) and not s.valid("") and len(other) >= 40


def test_a_code_works_once_and_only_in_time():
    clock = Clock()
    s = Sessions(clock)
    late, now = s.issue_code(), s.issue_code()
    assert s.redeem(now) and not s.redeem(now)
    clock.t = CODE_TTL_S + 1
    assert not s.redeem(late) and not s.redeem("made-up")


def test_wrong_secrets_back_off_doubling_after_the_free_tries():
    clock = Clock()
    s = Sessions(clock)
    waits = []
    for _ in range(FREE_FAILURES + 3):
        s.failed("203.0.113.1")
        waits.append(s.wait("203.0.113.1"))
    assert waits[:FREE_FAILURES - 1] == [0.0] * (FREE_FAILURES - 1)
    assert waits[FREE_FAILURES - 1:] == [1.0, 2.0, 4.0, 8.0]
    assert s.wait("198.51.100.2") == 0.0  # another address is not held
    s.succeeded("203.0.113.1")
    assert s.wait("203.0.113.1") == 0.0


def test_short_or_config_file_secrets_are_warned_about(caplog, monkeypatch):
    monkeypatch.delenv("CARTWHEEL_TOKEN", raising=False)
    with caplog.at_level(logging.WARNING, "cartwheel.server"):
        token, _ = tokens.outcome_token(shop(server={"token": "short"}), True, None)
    assert token == "short"
    assert "deprecated" in caplog.text and "5 characters" in caplog.text
    caplog.clear()
    monkeypatch.setenv("CARTWHEEL_TOKEN", "x" * 40)
    with caplog.at_level(logging.WARNING, "cartwheel.server"):
        assert tokens.outcome_token(shop(), True, None)[0] == "x" * 40
    assert caplog.text == ""
