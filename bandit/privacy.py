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
import re

from .errors import PersonalDataError

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

_PERSONAL_VALUE_PATTERNS = (
    ("e-mail", re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")),
    ("IP address", re.compile(r"^\s*(?:\d{1,3}\.){3}\d{1,3}\s*$")),
    ("IP address", re.compile(r"^\s*[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}\s*$")),
    ("payment card", re.compile(r"^\s*(?:\d[ -]?){13,19}\s*$")),
    ("phone number", re.compile(r"^\s*\+?\(?\d[\d\s\-()/.]{6,}\d\s*$")),
)


def looks_personal_key(key: str) -> str | None:
    """Return what kind of personal data ``key`` names, or None when it looks anonymous."""
    tokens = [t.lower() for t in _TOKEN_SPLIT.split(key) if t]
    joined = "".join(tokens)
    for token in (*tokens, joined):
        kind = _PERSONAL_KEY_TOKENS.get(token)
        if kind is not None:
            return kind
    return None


def looks_personal_value(value: str) -> str | None:
    """Return what kind of personal data the string ``value`` looks like, or None."""
    for kind, pattern in _PERSONAL_VALUE_PATTERNS:
        if pattern.search(value):
            return kind
    return None


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
    # keyed BLAKE2b is a MAC by itself (no HMAC construction needed) and fast on the hot path
    return hashlib.blake2b(visitor_id.encode("utf-8"), key=salt[:64], digest_size=16).hexdigest()
