"""Refuse personal data before it can reach a log.

cartwheel stores anonymous contexts only. Keys whose name says they hold personal data and
string values that look like an e-mail address, a phone number, an IP address or a card number
are refused with a :class:`PersonalDataError` that names the field and says why.

>>> looks_personal_key("customer_email")
'e-mail'
>>> looks_personal_key("cart_value") is None
True
>>> looks_personal_value("203.0.113.7")
'IP address'
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
import urllib.parse

from bandit.domain.errors import CartwheelError, PersonalDataError

# Tokens of a key (split on _, -, . and camelCase) that name personal data, and what they are.
_PERSONAL_KEY_TOKENS = {
    "email": "e-mail", "mail": "e-mail",
    "phone": "phone number", "tel": "phone number", "telephone": "phone number",
    "msisdn": "phone number",
    "name": "name", "firstname": "name", "lastname": "name", "surname": "name",
    "fullname": "name", "username": "name",
    "address": "address", "street": "address", "zip": "address", "zipcode": "address",
    "postcode": "address", "postal": "address",
    "ip": "IP address", "ipv4": "IP address", "ipv6": "IP address",
    "ssn": "national id", "passport": "national id",
    "birthday": "date of birth", "birthdate": "date of birth", "dob": "date of birth",
    "iban": "bank account", "card": "payment card", "cc": "payment card",
    "password": "credential",
}
_TOKEN_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^\W\d_]{2,}")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_HEXISH = re.compile(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*")  # IPv6 candidates
_DIGIT_RUN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")  # card number candidates
_HEX_ID = re.compile(r"(?=[0-9a-fA-F-]*[a-fA-F])[0-9a-fA-F-]{16,128}")  # hex, with a letter
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_PLUS_PHONE = re.compile(r"\+\(?\d[\d\s\-()/.]{6,}\d")
_BARE_PHONE = re.compile(r"^\s*\(?\d[\d\s\-()/.]{6,}\d\s*$")
_BARE_CARD = re.compile(r"^\s*(?:\d[ -]?){13,19}\s*$")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "").upper()
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _is_ipv6(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).version == 6
    except ValueError:
        return False


def _kind(text: str) -> str | None:
    kind = _kind_in_text(text)
    if kind is not None:
        return kind
    if _BARE_CARD.match(text):
        return "payment card"
    if _BARE_PHONE.match(text):
        return "phone number"
    return None


def _kind_in_text(text: str) -> str | None:
    """Personal data anywhere in ``text``, by forms a plain id or category never has."""
    if _EMAIL.search(text):
        return "e-mail"
    if _IPV4.search(text) or any(_is_ipv6(c) for c in _HEXISH.findall(text)):
        return "IP address"
    # a hex token with letters in it (a UUID, a hashed id, an event id) holds digit runs
    # by chance, ~0.4% of them a Luhn-valid 13-19 digits: it is an opaque id, not a card
    hex_id = _HEX_ID.fullmatch(text) is not None
    for run in () if hex_id else _DIGIT_RUN.findall(text):
        digits = re.sub(r"[ -]", "", run)
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return "payment card"
    # ... and a lower-case one that starts with two letters and two digits passes the IBAN
    # checksum 1 time in 97; IBANs are written in capitals
    lower_hex = hex_id and not any(c.isupper() for c in text)
    if not lower_hex and any(_iban_ok(c) for c in _IBAN.findall(text)):
        return "bank account (IBAN)"
    if _PLUS_PHONE.search(text):
        return "phone number"
    return None


def _forms(value: str):
    """The forms of a string to look at: Unicode-normalized (a full-width @ is an @) and,
    when it holds percent escapes, decoded too (``jane%40example.com``)."""
    text = unicodedata.normalize("NFKC", value)
    yield text
    if "%" in text:
        yield unicodedata.normalize("NFKC", urllib.parse.unquote(text))


def looks_personal_key(key: str) -> str | None:
    """Return what kind of personal data ``key`` names (or holds), or None when it looks
    anonymous."""
    for form in _forms(key):
        tokens = [t.lower() for t in _TOKEN_SPLIT.split(form) if t]
        joined = "".join(tokens)
        for token in (*tokens, joined):
            kind = _PERSONAL_KEY_TOKENS.get(token)
            if kind is not None:
                return kind
    return looks_personal_value(key)


def looks_personal_value(value: str) -> str | None:
    """Return what kind of personal data the string ``value`` looks like, or None.

    >>> looks_personal_value("card:4111111111111111"), looks_personal_value("tel:+491701234567")
    ('payment card', 'phone number')
    >>> looks_personal_value("jane%40example.com"), looks_personal_value("jane\uff20example.com")
    ('e-mail', 'e-mail')
    >>> looks_personal_value("DE89 3704 0044 0532 0130 00"), looks_personal_value("paid_search")
    ('bank account (IBAN)', None)
    """
    return _first_kind(value, _kind)


def _first_kind(value: str, detect) -> str | None:
    """What ``detect`` finds in the first form of ``value`` (see :func:`_forms`) it finds
    anything in."""
    return next((kind for kind in map(detect, _forms(value)) if kind is not None), None)


def check_key(key: str) -> None:
    """Raise :class:`PersonalDataError` when ``key`` names personal data."""
    kind = looks_personal_key(key)
    if kind is not None:
        raise PersonalDataError(
            f"context key {key!r} looks like personal data ({kind}); cartwheel only accepts "
            "anonymous context, so leave it out or send a coarse, non-identifying feature instead",
            field=key,
        )


def check_value(key: str, value: str) -> None:
    """Raise :class:`PersonalDataError` when a string value looks like personal data."""
    kind = looks_personal_value(value)
    if kind is not None:
        raise PersonalDataError(
            f"value of context key {key!r} looks like personal data ({kind}); it was refused "
            "and not stored",
            field=key,
        )


def hash_visitor(visitor_id: str, salt: bytes) -> str:
    """Salted, keyed hash of an opaque visitor id: the only form in which it is stored.

    >>> hash_visitor("v-1", b"salt") == hash_visitor("v-1", b"salt")
    True
    >>> hash_visitor("v-1", b"salt") == hash_visitor("v-1", b"other")
    False
    """
    return _keyed_hash(visitor_id, salt)


def _keyed_hash(text: str, salt: bytes, person: bytes = b"") -> str:
    # keyed BLAKE2b is a MAC by itself (no HMAC construction needed) and fast on the hot path;
    # ``person`` keeps the hashes of different kinds of id apart
    return hashlib.blake2b(text.encode("utf-8"), key=salt[:64], digest_size=16,
                           person=person).hexdigest()


def hash_outcome_id(outcome_id: str, salt: bytes) -> str:
    """Keyed hash of a shop's outcome id (an order number can identify a person): what the
    store keeps, so idempotency works without the id itself.

    >>> hash_outcome_id("order-1", b"salt") != hash_outcome_id("order-1", b"pepper")
    True
    """
    return _keyed_hash(outcome_id, salt, b"outcome-id")


#: the longest visitor id a request may send
MAX_VISITOR_ID = 256


def check_visitor(visitor_id) -> None:
    """Refuse a visitor id that is not a non-empty string of at most :data:`MAX_VISITOR_ID`
    characters, or that looks like personal data (:func:`check_visitor_id`); the one check of
    decide and of an order sent by visitor id."""
    if not isinstance(visitor_id, str) or not 0 < len(visitor_id) <= MAX_VISITOR_ID:
        raise CartwheelError(f"visitor_id must be a non-empty string of at most "
                             f"{MAX_VISITOR_ID} characters", field="visitor_id")
    check_visitor_id(visitor_id)


def check_visitor_id(visitor_id: str) -> None:
    """Raise :class:`PersonalDataError` when a visitor id looks like an e-mail address or a
    phone number (``+`` and digits, or digits with phone separators), the ids a shop might send
    by mistake instead of an opaque one. An all-digit id without ``+`` (a numeric customer id)
    is accepted: it is stored only as a keyed hash.

    >>> check_visitor_id("12345678"), check_visitor_id("v-42"), check_visitor_id("9f0c2a")
    (None, None, None)
    >>> check_visitor_id("+49 170 1234567")
    Traceback (most recent call last):
    ...
    bandit.domain.errors.PersonalDataError: visitor_id looks like a phone number; send an opaque id (a random cookie value, or your customer number)
    """
    if _EMAIL.search(visitor_id):
        kind = "an e-mail address"
    elif _PLUS_PHONE.search(visitor_id) or (  # a bare digit run is a customer number
            _BARE_PHONE.match(visitor_id) and not visitor_id.strip().isdigit()
            and 8 <= sum(c.isdigit() for c in visitor_id) <= 15):
        kind = "a phone number"
    else:
        return
    raise PersonalDataError(f"visitor_id looks like {kind}; send an opaque id (a random cookie "
                            "value, or your customer number)", field="visitor_id")
