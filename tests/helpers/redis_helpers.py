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
                 users: dict[str, list[str]] | None = None, tls: bool = False):
        """``users``: ACL users by name, each a list of rules (``["on", ">password",
        "~keys", "+cmd", ...]``; a key pattern may hold spaces); with them the default user
        is off, and an ``admin`` user (password ``admin-password``) can do anything.
        ``tls``: Redis speaks TLS only, with a certificate for 127.0.0.1 signed by a CA made
        for the test (``ca_file``); :attr:`url` names that CA."""
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed: `apt-get install redis-server` (the "
                        "Debian package; .ci/run installs it when missing)")
        self.dir, self.appendfsync = Path(directory), appendfsync
        self.users = None if users is None else {
            "default": ["off"], "admin": ["on", ">admin-password", "~*", "&*", "+@all"], **users}
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.ca_file = _certificates(self.dir) if tls else None

    @property
    def url(self) -> str:
        if self.ca_file is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://127.0.0.1:{self.port}/0"

    def url_of(self, user: str, password: str) -> str:
        """The URL an ACL user connects with (a secret: give it through the environment)."""
        return self.url.replace("://", f"://{user}:{password}@", 1)

    def _listen(self) -> list[str]:
        if self.ca_file is None:
            return ["--port", str(self.port)]
        return ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no",
                "--tls-cert-file", str(self.dir / "server.pem"),
                "--tls-key-file", str(self.dir / "server.key"),
                "--tls-ca-cert-file", str(self.ca_file)]

    def _connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
        if self.ca_file is None:
            return sock
        import ssl

        return ssl.create_default_context(cafile=str(self.ca_file)).wrap_socket(
            sock, server_hostname="127.0.0.1")

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", *self._listen(), "--bind", "127.0.0.1",
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
                with self._connect() as s:
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


def _certificates(directory: Path) -> Path:
    """A CA and a certificate for 127.0.0.1 signed by it (openssl), in ``directory``; the
    CA's file."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: `apt-get install openssl` (.ci/run installs it "
                    "when missing)")

    def run(*argv):
        subprocess.run(["openssl", *argv], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=cartwheel test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")
    return directory / "ca.pem"
