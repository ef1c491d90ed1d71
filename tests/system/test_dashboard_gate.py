"""The dashboard's promotion-gate panel in a real browser: who decides, each challenger's
advantage with its bounds and the visitors it still needs, coloured good or bad only when the
bound excludes 0, and the history in words; hidden for a shop without challengers."""

from __future__ import annotations

from browser_page import check_numbers, open_page

from bandit.http.dashboard import render


def gate_report(gate: dict | None) -> dict:
    return {"groups": {}, "actions": {}, "pending_events": 0, "confidence": 0.95,
            "generated_at": 1.7e9, "incentive_spend_today": None, "daily_budget": None,
            "shop": "s", "currency": "EUR", "model": None, "timeline": {"hour": [], "day": []},
            "holdout_fraction": 0.1, "per_action_uplift": [], "verdict": None, "uplift": [],
            "policy_gate": gate}


GATE = {"default": {
    "champion": "profit:conversion=logistic", "mode": "auto", "share": 0.2, "confidence": 0.95,
    "min_effect": 0.0, "rows_compared": 250_000,
    "policies": [
        {"spec": "linucb", "role": "retired", "share": 0.0, "decided": 180_000, "ready": False,
         "pinned": False, "estimate": -0.31, "lower": -0.52, "upper": -0.1, "rows_needed": 0},
        {"spec": "profit:conversion=logistic", "role": "champion", "share": 0.8,
         "decided": 60_000, "ready": False, "pinned": False},
        {"spec": "lints", "role": "challenger", "share": 0.2, "decided": 10_000,
         "ready": False, "pinned": False, "estimate": 0.04, "lower": -0.2, "upper": 0.28,
         "rows_needed": 1_250_000}],
    "promotions": [{"row": 212_300, "from_spec": "linucb",
                    "to_spec": "profit:conversion=logistic", "bound": 0.02, "estimate": 0.3,
                    "by": "gate"}],
    "retired": [{"row": 212_300, "spec": "linucb", "reason": "replaced"}],
    "rollbacks": []}}


def test_the_gate_panel_says_who_decides_and_how_the_challengers_stand(browser, tmp_path):
    data = {"report": gate_report(GATE), "segments": None}
    path = tmp_path / "gate.html"
    path.write_text(render(data)[0])
    context, page, problems = open_page(browser, path.as_uri())
    assert page.is_visible("#gate-panel")
    text = page.inner_text("#gate")
    assert "profit:conversion=logistic decides." in text
    assert "Challengers share 20% of the traffic until a 95% bound" in text
    assert "became the champion after 212,300 visitors (its bound cleared)" in text
    assert "1,250,000 visitors" in text
    assert "gate" in check_numbers(page, data)
    roles = page.eval_on_selector_all("#gate tbody tr", "rs => rs.map(r => [r.dataset.role, "
                                      "r.className])")
    # the retired one is significantly worse (bad); the challenger's bounds span 0 (no colour)
    assert roles == [["retired", "bad"], ["champion", ""], ["challenger", ""]]
    assert not problems, problems
    context.close()


def test_a_shop_without_challengers_has_no_gate_panel(browser, tmp_path):
    path = tmp_path / "plain.html"
    path.write_text(render({"report": gate_report(None), "segments": None})[0])
    context, page, problems = open_page(browser, path.as_uri())
    assert not page.is_visible("#gate-panel")
    assert not problems, problems
    context.close()
