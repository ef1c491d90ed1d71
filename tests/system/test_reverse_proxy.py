"""The guide's nginx block (docs/integration.md, "Behind the shop's reverse proxy") in Debian's
nginx in front of a real `cartwheel serve`: pages reach decide, activate and the script through
the shop's own origin, and the proxy's X-Forwarded-For gives each visitor its own address
bucket when the proxy is trusted."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from server_helpers import STARTED, Server, config_file

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxied(tmp_path):
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: .ci/run installs Debian's nginx package")
    srv = Server(tmp_path / "data", config_file(tmp_path, server={
        "token": "t" * 32, "trusted_proxies": ["127.0.0.1"], "address_rate": 0.01,
        "address_burst": 3}))
    block = re.search(r"```nginx\n(.*?)```", (ROOT / "docs" / "integration.md").read_text(),
                      re.S).group(1)
    block = block.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}")
    port = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(
        f"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n{block}    }}\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                            stderr=subprocess.PIPE)
    STARTED.append(proc)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/cartwheel", srv
    proc.terminate()
    proc.wait(timeout=30)
    srv.stop()


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_guides_nginx_block_proxies_pages_to_cartwheel(proxied):
    base, _ = proxied
    with urllib.request.urlopen(base + "/v1/client.js", timeout=10) as response:
        assert response.status == 200 and b"window.cartwheel" in response.read()
    status, d = _post(base + "/v1/decide", {"visitor_id": "v-1", "context": {}},
                      {"X-Forwarded-For": "203.0.113.1"})
    assert status == 200 and d["placement"] == "default"
    # each visitor address has its own bucket of 3 (visitors and proxy share 127.0.0.1 here,
    # so the test names the visitors' addresses in the header nginx extends with the peer's)
    for _ in range(2):
        assert _post(base + "/v1/decide", {"visitor_id": "v-1", "context": {}},
                     {"X-Forwarded-For": "203.0.113.1"})[0] == 200
    status, err = _post(base + "/v1/decide", {"visitor_id": "v-2", "context": {}},
                        {"X-Forwarded-For": "203.0.113.1"})
    assert status == 429 and err["error"]["field"] == "address"
    assert _post(base + "/v1/decide", {"visitor_id": "v-3", "context": {}},
                 {"X-Forwarded-For": "203.0.113.2"})[0] == 200
