"""schemathesis against the live server's own contract (GET /openapi.json): every endpoint,
bounded examples, with and without the token; no answer may be a server error (trust
boundaries issue, item 7)."""

from __future__ import annotations

import hypothesis
import pytest
from server_helpers import Server, config_file

schemathesis = pytest.importorskip("schemathesis", reason="pip install 'cartwheel[dev]'")

TOKEN = "a-fuzzing-token-of-32-characters"


def test_the_api_answers_every_generated_request_without_a_server_error(tmp_path):
    from schemathesis import runner
    from schemathesis.checks import not_a_server_error
    from schemathesis.runner import events

    srv = Server(tmp_path / "data", config_file(tmp_path, server={"token": TOKEN}))
    try:
        schemathesis.experimental.OPEN_API_3_1.enable()  # our document is OpenAPI 3.1
        schema = schemathesis.from_uri(srv.url + "/openapi.json")
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            run = runner.from_schema(
                schema, checks=[not_a_server_error], headers=headers,
                hypothesis_settings=hypothesis.settings(
                    max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=list(hypothesis.HealthCheck)))
            seen = list(run.execute())
            finished = [e for e in seen if isinstance(e, events.Finished)]
            assert finished, "schemathesis did not run"
            result = finished[-1]
            assert result.passed_count > 0
            assert not result.has_failures and not result.has_errors, \
                [_problem(e) for e in seen if isinstance(e, events.AfterExecution)
                 and (e.result.has_failures or e.result.has_errors)]
        assert "Traceback" not in srv.log_text()
    finally:
        assert srv.stop() == 0


def _problem(event) -> str:
    """One failing endpoint: its name, what failed, and the request and answer that showed it."""
    result = event.result
    lines = [f"{event.verbose_name} ({event.status.name})"]
    for check in [c for c in result.checks if c.value.name != "success"][:3]:
        case = check.example
        status = check.response.status_code if check.response else "no answer"
        lines.append(f"  {check.name}: {check.message or ''} -> {status}; "
                     f"{case.method} {case.full_path} query={case.query} "
                     f"headers={case.headers} body={str(case.body)[:300]}")
    lines += [f"  error: {e.title}: {e.message}"[:600] for e in result.errors[:3]]
    return "\n".join(lines)
