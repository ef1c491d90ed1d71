"""Start the real server (`cartwheel serve`) in a subprocess on 127.0.0.1 and talk to it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path


class Client:
    """One keep-alive HTTP connection to a server on 127.0.0.1."""

    token: str | None = None  # sent with outcomes unless a test gives its own Authorization
    #: reads of the shop's figures carry the token too (unless a test gives its own headers)
    READS = ("/v1/report", "/v1/segments", "/metrics")

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                headers: dict | None = None) -> tuple[int, dict | str]:
        if headers is None and self.token and path in self.READS:
            headers = {"Authorization": f"Bearer {self.token}"}
        status, _, data = self.exchange(method, path, body, headers)
        return status, data

    def exchange(self, method: str, path: str, body: bytes | dict | None = None,
                 headers: dict | None = None) -> tuple[int, dict, dict | str]:
        """(status, response headers, decoded body)."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, ConnectionError) as exc:
                self.conn.close()  # the server may close a connection after a bad request
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                # a kept-alive connection the server closed while idle (its idle timeout, on
                # a loaded machine) broke before the request was sent: send it once more
                small = len(body or b"") <= 1 << 16  # not a test's oversized body
                if attempt == 2 or not isinstance(exc, BrokenPipeError) or not small:
                    raise
        ctype = resp.getheader("Content-Type", "")
        return (resp.status, dict(resp.getheaders()),
                json.loads(data) if "json" in ctype else data.decode())

    def post(self, path: str, body, headers=None):
        """POST JSON; outcomes carry the server's token unless ``headers`` are given."""
        auto = {"Authorization": f"Bearer {self.token}"} if (
            self.token and path == "/v1/outcome" and headers is None) else {}
        return self.request("POST", path, body, {"Content-Type": "application/json", **auto,
                                                 **(headers or {})})


#: every server process started here, so that one a failing test never stopped is killed
#: when its test module ends (``stop_leftovers``, called by conftest) instead of outliving
#: the run
STARTED: list[subprocess.Popen] = []


def stop_leftovers() -> list[str]:
    """Kill the started servers still running (by pid); their command lines, for a warning."""
    left = [proc for proc in STARTED if proc.poll() is None]
    for proc in left:
        proc.kill()
        proc.wait(timeout=30)
    STARTED.clear()
    return [" ".join(proc.args[2:]) for proc in left]


class Server(Client):
    """A `cartwheel serve` process on an ephemeral loopback port; its log goes to a file
    (``log_text()``), so a chatty server never blocks on a full pipe."""

    def __init__(self, data_dir: Path, config: Path | None = None, env: dict | None = None,
                 args: tuple[str, ...] = (), command: str = "serve",
                 files_limit: int | None = None):
        argv = [sys.executable, "-m", "bandit.cli", command, "--port", "0", "--data-dir",
                str(data_dir), *args]
        if config is not None:
            argv += ["--config", str(config)]
        data_dir = Path(data_dir)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self._log = open(self.log_path, "a")
        def limit_files():  # the server's own descriptor limit (RLIMIT_NOFILE), when asked
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (files_limit, files_limit))

        # a scale-out process holds the test shop's secrets (from the environment: never Redis)
        scaleout = command == "train" or "decide" in args
        if scaleout:
            from scaleout_helpers import ENV as SCALEOUT_ENV
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                          **(SCALEOUT_ENV if scaleout else {}), **(env or {})},
                                     preexec_fn=limit_files if files_limit else None)
        STARTED.append(self.proc)
        self.announce = ""
        for line in self.proc.stdout:  # the announcement ends with the metrics line
            self.announce += line
            if "metrics:" in line:
                break
        match = re.search(r"http://127\.0\.0\.1:(\d+)", self.announce)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {self.announce}{self.log_text()}")
        # the banner names where the write token is, never the token itself
        self.token = _write_token(self.announce, data_dir, config, {**os.environ, **(
            SCALEOUT_ENV if scaleout else {}), **(env or {})})
        code = re.search(r"/login\?code=(\S+)", self.announce)
        #: the one-time sign-in code the banner printed (works once)
        self.sign_in_code = code.group(1) if code else None
        self.data_dir = data_dir
        self.url = match.group(0)
        super().__init__(int(match.group(1)))

    @property
    def read_token(self) -> str | None:
        """The read secret the server generated into its data dir (None: configured)."""
        path = self.data_dir / "read_token"
        return path.read_text().strip() if path.exists() else None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        # what it printed after the announcement (the line it says goodbye with)
        self.farewell = self.proc.stdout.read()
        return code


def farewell_snapshot(farewell: str) -> tuple[int, Path] | None:
    """(model version, snapshot path) from `serve`'s goodbye when it saved a final snapshot,
    else None."""
    said = re.fullmatch(r"cartwheel stopped at model version (\d+): saved in (\S+)\n", farewell)
    return (int(said.group(1)), Path(said.group(2))) if said else None


def _write_token(announce: str, data_dir: Path, config, env: dict) -> str | None:
    """The write token a server took: from the file, the config or the environment its
    banner names (None: --no-auth)."""
    if "Authorization: Bearer" not in announce:
        return None
    if "Bearer $CARTWHEEL_TOKEN" in announce:
        return env["CARTWHEEL_TOKEN"].strip()
    kept = re.search(r"Bearer \$\(cat (\S+)\)", announce)
    if kept:
        return Path(kept.group(1)).read_text().strip()
    import tomllib

    return tomllib.loads(Path(config).read_text())["server"]["token"]


def config_file(tmp_path: Path, *, hash_key_in_config: bool = True, **sections) -> Path:
    """Write the default shop with sections updated to a TOML file.

    Tests send many decisions from one address (127.0.0.1) without the token, as pages do:
    the per-address limit is off unless a test sets it (``test_trust.py`` tests it).
    ``hash_key_in_config=False``: no ``[privacy] salt`` (the data dir keeps its own key)."""
    from engine_helpers import shop_doc

    sections["server"] = {"address_rate": 0.0, **sections.get("server", {})}
    doc = shop_doc(**sections)
    if not hash_key_in_config:
        doc.pop("privacy")
    path = tmp_path / "shop.toml"
    path.write_text(_toml(doc))
    return path


def _toml(doc: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return repr(v)

    lines = []
    for k, v in doc.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and v and
                                               not isinstance(v[0], dict)):
            lines.append(f"{k} = {value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            if all(isinstance(x, dict) for x in v.values()) and v:
                for sub, table in v.items():
                    lines.append(f"[{k}.{sub}]")
                    lines += [f"{a} = {value(b)}" for a, b in table.items()]
            else:
                lines.append(f"[{k}]")
                lines += [f"{a} = {value(b)}" for a, b in v.items()]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append(f"[[{k}]]")
                lines += [f"{a} = {value(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"
