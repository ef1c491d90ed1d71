"""Research notebooks execute top to bottom (jupytext's .py, nbclient, the real kernel), plot,
and never reach beyond this machine."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

# run first in each kernel: any connection beyond this machine raises (the kernel's own
# channels are ZeroMQ's C sockets on the loopback, untouched)
OFFLINE = """
import socket
_connect = socket.socket.connect
def _loopback_only(sock, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"a notebook tried to reach {address}: notebooks must run offline")
    return _connect(sock, address)
socket.socket.connect = _loopback_only
"""

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("[0-9]_*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_plots(path, tmp_path, monkeypatch):
    # one BLAS thread in the kernel, as the README recommends for cartwheel's small matrices
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = jupytext.read(path)
    nb.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was shown"


def test_the_five_notebooks_are_there():
    assert [p.name.split("_", 1)[0] for p in NOTEBOOKS] == ["1", "2", "3", "4", "5"]
