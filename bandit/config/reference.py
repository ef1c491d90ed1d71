"""The configuration reference page, generated from the commented file ``cartwheel init`` writes.

One source for what a shop reads about its configuration: the example shop
(``bandit/config/example_shop.toml``, every key with a comment, and
``bandit/config/example_placements.toml``, which init adds commented out) gives each table's
prose and each
key's example and meaning, and the declarative schema (:mod:`bandit.config.schema`) gives the
defaults and what each setting expects, so the page cannot drift from either
(``tests/test_docs.py`` checks ``docs/configuration.md`` is current).

    python -m bandit.config.reference > docs/configuration.md

>>> page = render()
>>> "| `fraction` | `0.05` | `0.05` |" in page
True
"""

from __future__ import annotations

import re
from importlib import resources

import msgspec

from bandit.config.schema import (
    Attribution,
    Holdout,
    Policy,
    Privacy,
    Server,
    Shop,
    Storage,
    describe,
)
from bandit.domain.objective import Objective

#: the settings tables of the declarative schema
SCHEMA = {"shop": Shop, "objective": Objective, "policy": Policy, "holdout": Holdout,
          "attribution": Attribution, "storage": Storage, "server": Server, "privacy": Privacy}
_HEADER = re.compile(r"^\[\[?([A-Za-z0-9_.]+)\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*(?:#\s?(.*))?$")


def example_text() -> str:
    """The commented example shop that ``cartwheel init`` writes."""
    return resources.files("bandit.config").joinpath("example_shop.toml").read_text("utf-8")


def placements_text() -> str:
    """The ``[[placements]]`` example (``cartwheel init`` adds it commented out)."""
    return resources.files("bandit.config").joinpath("example_placements.toml").read_text(
        "utf-8")


def init_text() -> str:
    """What ``cartwheel init`` writes: the example shop, then the placements example
    commented out (a shop that decides at several places uncomments it).

    >>> lines = init_text().splitlines()
    >>> "# [[placements]]" in lines, "[[placements]]" in lines
    (True, False)
    """
    commented = "\n".join(line if line.startswith("#") or not line else f"# {line}"
                          for line in placements_text().splitlines())
    return example_text().rstrip() + "\n\n" + commented + "\n"


def _table(name: str) -> str:
    head, _, _ = name.partition(".")
    return f"{head}.<name>" if head == "features" and "." in name else name


def sections(text: str) -> list[tuple[str, list[str], dict[str, tuple[str, str]]]]:
    """``(table, prose lines, {key: (example value, meaning)})`` in file order; a table that
    repeats (``[[actions]]``, ``[features.*]``) is one section with the union of its keys."""
    found: dict[str, tuple[list[str], dict[str, tuple[str, str]]]] = {}
    table, pending, last_key = "", [], None
    found[""] = ([], {})
    for raw in text.splitlines():
        line = raw.strip()
        header = _HEADER.match(line)
        if header:
            table = _table(header.group(1))
            prose, _ = found.setdefault(table, ([], {}))
            if not prose:
                prose.extend(pending)
            pending, last_key = [], None
        elif line.startswith("#"):
            comment = line.lstrip("#").strip()
            if comment.startswith("-" * 10):  # a separator between parts of the file
                continue
            keys = found[table][1]
            if last_key is not None and raw.startswith(" "):  # a key's comment, continued
                value, meaning = keys[last_key]
                keys[last_key] = (value, f"{meaning} {comment}".strip())
            else:
                pending.append(comment)
                last_key = None
        elif line:
            key = _KEY.match(line)
            if key:
                prose, keys = found[table]
                if pending and not keys and not prose:
                    prose.extend(pending)
                pending = []
                if key.group(1) not in keys:
                    keys[key.group(1)] = (key.group(2), key.group(3) or "")
                    last_key = key.group(1)
                else:
                    last_key = None
        else:
            last_key = None
    return [(name, prose, keys) for name, (prose, keys) in found.items() if keys]


def _default(table: str, key: str) -> str:
    record = SCHEMA.get(table)
    fields = {f.name: f for f in msgspec.structs.fields(record)} if record else {}
    field = fields.get(key)
    if field is None or field.default is msgspec.NODEFAULT:
        return ""
    value = field.default
    if value is None or value == ():
        return "(none)"
    if isinstance(value, msgspec.Struct):  # a nested table, as TOML writes it inline
        inner = ", ".join(f"{f} = {_toml(getattr(value, f))}" for f in value.__struct_fields__)
        return f"`{{ {inner} }}`"
    return f"`{value!r}`".replace("'", '"') if isinstance(value, str) else f"`{value}`"


def _toml(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def render() -> str:
    """The reference page as Markdown."""
    text = example_text()
    out = ["# Configuration reference", "",
           "<!-- generated by `python -m bandit.config.reference` from the file `cartwheel init` "
           "writes: edit bandit/config/example_shop.toml, not this page -->", "",
           "A shop is one TOML file (`cartwheel init` writes a commented one; `cartwheel serve "
           "--config FILE` reads it). Every key is checked at start: a typo or a wrong type stops "
           "cartwheel with a message naming the key. The default column gives what a left-out key "
           "means, from the declarative schema (`bandit/config/schema.py`).", ""]
    for table, prose, keys in sections(text) + sections(placements_text()):
        title = "top level" if not table else f"`[{table}]`"
        out += [f"## {title}", ""]
        if prose:
            out += [" ".join(prose), ""]
        out += ["| key | example | default | accepts | meaning |", "|---|---|---|---|---|"]
        record = SCHEMA.get(table)
        for key, (value, meaning) in keys.items():
            accepts = (describe(record, key) if record and key in record.__struct_fields__
                       else "")
            example = value.replace("|", "\\|")
            out.append(f"| `{key}` | `{example}` | {_default(table, key)} | "
                       f"{accepts.replace('|', '/')} | {meaning.replace('|', '/')} |")
        out.append("")
    out += ["## The whole file", "", "```toml", init_text().rstrip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
