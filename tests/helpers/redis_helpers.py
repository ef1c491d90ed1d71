"""A real redis-server (Debian's package) for the scale-out tests: started on a free port of
127.0.0.1 with its own directory and pid file, stopped (or killed) by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``appendfsync``: "always" when a test kills redis itself (every acknowledged write is on
    disk), else "everysec" (what a shop runs)."""

    def __init__(self, directory: Path, appendfsync: str = "everysec",
                 users: dict[str, list[str]] | None = None):
        """``users``: ACL users by name, each a list of rules (``["on", ">password",
        "~keys", "+cmd", ...]``; a key pattern may hold spaces); with them the default user
        is off, and an ``admin`` user (password ``admin-password``) can do anything."""
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed: `apt-get install redis-server` (the "
                        "Debian package; .ci/run installs it when missing)")
        self.dir, self.appendfsync = Path(directory), appendfsync
        self.users = None if users is None else {
            "default": ["off"], "admin": ["on", ">admin-password", "~*", "&*", "+@all"], **users}
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_of(self, user: str, password: str) -> str:
        """The URL an ACL user connects with (a secret: give it through the environment)."""
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--pidfile", str(self.dir / "redis.pid"),
             "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
             "--maxmemory", "512mb", "--maxmemory-policy", "noeviction",
             "--logfile", str(self.dir / "redis.log"),
             *(arg for name, rules in (self.users or {}).items()
               for arg in ("--user", name, "reset", *rules))],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "redis.err", "w"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    if self.users is not None:  # the admin's password first
                        s.sendall(b"AUTH admin admin-password\r\n")
                        s.recv(64)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + "".join(
                    p.read_text() for p in (self.dir / "redis.err", self.dir / "redis.log")
                    if p.exists()))
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 20 s")

    def _signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: Redis hangs with its connections open (what a stuck host looks like)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
