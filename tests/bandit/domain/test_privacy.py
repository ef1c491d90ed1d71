"""Visitor ids: opaque ids and numeric customer ids pass, e-mail addresses and phone numbers do
not (they are personal data even hashed: a shop should send an opaque id)."""

from __future__ import annotations

import pytest
from engine_helpers import CTX, open_engine

from bandit.domain.errors import PersonalDataError
from bandit.domain.privacy import check_visitor_id

REFUSED = ["jane@example.com", "JANE.DOE@shop.example", "+491701234567", "+49 170 1234567",
           "+1 (555) 123-4567", "0170 1234567", "555-123-4567", "(030) 1234 5678",
           "030/12345678", "0170.123.4567"]
ACCEPTED = ["12345678", "1234567890123456789", "v-42", "visitor-2024-001",
            "550e8400-e29b-41d4-a716-446655440000", "9f0c2a7b", "cw_3f9a", "42", "1-2"]


@pytest.mark.parametrize("visitor_id", REFUSED)
def test_e_mail_addresses_and_phone_numbers_are_refused(visitor_id):
    with pytest.raises(PersonalDataError) as err:
        check_visitor_id(visitor_id)
    assert err.value.field == "visitor_id"


@pytest.mark.parametrize("visitor_id", ACCEPTED)
def test_opaque_and_numeric_ids_are_accepted(visitor_id):
    assert check_visitor_id(visitor_id) is None


def test_the_engine_refuses_such_a_visitor_and_stores_nothing(tmp_path, clock):
    engine = open_engine(tmp_path, clock)
    results = engine.decide_batch([("jane@example.com", CTX, None), ("v1", CTX, None)])
    assert isinstance(results[0], PersonalDataError) and results[0].field == "visitor_id"
    assert results[1].action in engine.action_ids
    assert engine.store.count("decisions") == 1
    engine.close()
