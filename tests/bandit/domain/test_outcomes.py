"""What an outcome may be: order ids are opaque (hashed, never refused for their form), order
values and conversions are checked."""

from __future__ import annotations

import numpy as np
import pytest

from bandit.domain.errors import CartwheelError
from bandit.domain.objective import Objective
from bandit.domain.outcomes import MAX_OUTCOME_ID, check_outcome
from bandit.domain.privacy import looks_personal_value


def test_long_numeric_order_ids_are_all_accepted_and_only_hashed():
    # one random 13-19 digit run in ten passes the Luhn check a card number passes: a shop
    # with such order numbers lost that share of its conversions to a 400 while the ids were
    # screened as personal data (they are stored only as keyed hashes)
    rng = np.random.default_rng(11)
    lengths = rng.integers(13, 20, 100_000)
    ids = ["".join(map(str, rng.integers(0, 10, n))) for n in lengths]
    ids = [f"order-{i}" if k % 2 else i for k, i in enumerate(ids)]
    keys = {check_outcome("e1", True, 42.0, i, Objective(), b"key") for i in ids}
    assert len(keys) == len(set(ids))  # every id accepted, one hash each
    assert not any(i in k for i, k in zip(ids[:100], sorted(keys)[:100]))
    assert all(len(k) == len(next(iter(keys))) for k in keys)


def test_card_numbers_in_a_context_are_still_refused():
    assert "card" in looks_personal_value("4111111111111111")
    assert "card" in looks_personal_value("4111 1111 1111 1111")


@pytest.mark.parametrize("outcome_id", ["", "x" * (MAX_OUTCOME_ID + 1), 12345])
def test_an_outcome_id_must_be_a_short_string(outcome_id):
    with pytest.raises(CartwheelError) as err:
        check_outcome("e1", True, 42.0, outcome_id, Objective(), b"key")
    assert err.value.field == "outcome_id"
