"""FeatureSpace encoding, validation and privacy."""

from __future__ import annotations

import numpy as np
import pytest

from bandit.domain.errors import ContextError, PersonalDataError
from bandit.domain.features import Boolean, Categorical, Cyclic, FeatureSpace, Numeric
from bandit.domain.privacy import looks_personal_key, looks_personal_value

SPACE = FeatureSpace([
    Categorical("device", ("desktop", "mobile")),
    Numeric("cart_value", 0, 1000, log=True, default=0),
    Boolean("returning"),
    Cyclic("hour", 24),
])


def test_encoding_closed_form():
    X = SPACE.transform([{"device": "desktop", "cart_value": 99.0, "returning": False, "hour": 6},
                         {"device": "kiosk", "cart_value": 5000, "hour": 0}])
    assert SPACE.names == ("bias", "device=desktop", "device=mobile", "device=<unknown>",
                           "cart_value", "returning", "hour:sin", "hour:cos")
    np.testing.assert_allclose(X[0], [1, 1, 0, 0, np.log1p(99) / np.log1p(1000), 0, 1, 0],
                               atol=1e-12)
    # unknown category -> unknown bucket; finite outlier clipped to max; missing bool -> 0
    np.testing.assert_allclose(X[1], [1, 0, 0, 1, 1.0, 0, 0, 1], atol=1e-12)


def test_missing_keys_take_defaults():
    X = SPACE.transform([{}])
    np.testing.assert_allclose(X[0], [1, 0, 0, 1, 0, 0, 0, 1], atol=1e-12)


def test_columns_and_dicts_agree():
    rng = np.random.default_rng(0)
    cols = {"device": rng.choice(["desktop", "mobile", "tv"], 50),
            "cart_value": rng.uniform(0, 2000, 50), "returning": rng.random(50) < 0.5,
            "hour": rng.integers(0, 24, 50)}
    dicts = [dict(zip(cols, row)) for row in zip(*(v.tolist() for v in cols.values()))]
    np.testing.assert_array_equal(SPACE.transform_columns(cols), SPACE.transform(dicts))
    # the single-visitor fast path encodes exactly like the columnar one
    single = np.vstack([SPACE.transform([d]) for d in dicts])
    np.testing.assert_allclose(single, SPACE.transform(dicts), rtol=0, atol=1e-12)


@pytest.mark.parametrize("context, key", [
    ({"device": 3}, "device"),
    ({"cart_value": "12"}, "cart_value"),
    ({"cart_value": True}, "cart_value"),
    ({"cart_value": float("nan")}, "cart_value"),
    ({"cart_value": float("inf")}, "cart_value"),
    ({"returning": "yes"}, "returning"),
    ({"colour": "red"}, "colour"),
])
def test_bad_context_names_the_key(context, key):
    with pytest.raises(ContextError) as err:
        SPACE.transform([context])
    assert err.value.field == key and repr(key) in str(err.value)


@pytest.mark.parametrize("context, kind", [
    ({"email": "x"}, "e-mail"),
    ({"customerEmail": "x"}, "e-mail"),
    ({"phone_number": "x"}, "phone"),
    ({"first_name": "x"}, "name"),
    ({"ip_address": "x"}, "IP"),
    ({"street": "x"}, "address"),
    ({"device": "jane.doe@example.com"}, "e-mail"),
    ({"device": "192.168.1.20"}, "IP"),
    ({"device": "+49 170 1234567"}, "phone"),
    ({"device": "4111 1111 1111 1111"}, "card"),
])
def test_personal_data_is_refused_with_reason(context, kind):
    with pytest.raises(PersonalDataError, match=f"personal data.*{kind}"):
        SPACE.transform([context])


def test_schema_with_personal_key_is_refused():
    with pytest.raises(PersonalDataError):
        FeatureSpace([Categorical("email_domain", ("a",))])


def test_anonymous_keys_and_values_pass():
    for key in ("device", "cart_value", "page_type", "traffic_source", "hour", "region"):
        assert looks_personal_key(key) is None
    for value in ("mobile", "paid_search", "checkout", "2024", "v2-beta"):
        assert looks_personal_value(value) is None


def test_valid_range_refuses_and_stays_out_of_the_schema_hash():
    from engine_helpers import shop, shop_doc

    from bandit.config.shop import parse_config

    doc = shop_doc()
    doc["features"]["cart_value"] = {**doc["features"]["cart_value"], "valid_min": 0,
                                     "valid_max": 10_000}
    bounded = parse_config(doc)
    assert bounded.schema_hash() == shop().schema_hash()  # snapshots still load
    space = bounded.feature_space()
    for bad in (-3, 10_001, 1e300):
        with pytest.raises(ContextError, match="within"):
            space.normalize_row({"cart_value": bad})
        with pytest.raises(ContextError, match="within"):
            space.transform([{"cart_value": 5.0}, {"cart_value": bad}])
    assert space.normalize_row({"cart_value": 5000})[1] == {"cart_value": 1500.0}  # clipped
    assert shop().feature_space().normalize_row({"cart_value": -3})[1] == {"cart_value": 0.0}


def test_opaque_hex_ids_are_not_taken_for_cards_or_ibans():
    # lower-case hex ids (hashes, UUIDs, event ids) hold Luhn-valid digit runs ~0.4% of the
    # time and pass the IBAN checksum ~0.05%: 50,000 seeded ones as context values, none may
    # be refused, while the real forms still are
    rng = np.random.default_rng(7)
    ids = [rng.bytes(16).hex() for _ in range(50_000)]
    assert [i for i in ids if looks_personal_value(i) is not None] == []
    for real, kind in (("4111111111111111", "card"), ("4111-1111-1111-1111", "card"),
                       ("DE89370400440532013000", "IBAN"), ("card:4111111111111111", "card")):
        assert kind in looks_personal_value(real)
