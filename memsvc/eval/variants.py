"""What one evaluation compares: server configurations (MEMSVC_* settings, one memsvc each) and search variants
(extra POST /v1/search fields, run on the same ingested data). Parsed from the command line's
`NAME[:KEY=VALUE,...]` specs; one report run per (configuration, variant) pair."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_VARIANT_NAME = "default"
HARNESS_FIELDS = frozenset({"query", "top_k", "user_id"})  # the harness sets these per query and run


@dataclass(frozen=True)
class ServerConfiguration:
    """A memsvc to start: `settings` are MEMSVC_* variables without the prefix, e.g. {"EMBEDDING_DIM": "256"}."""

    name: str
    settings: dict[str, str] = field(default_factory=dict)
    # After each rung is ingested, consolidate the history of every user with at least CONSOLIDATED_HISTORY
    # memories through this backend (None: no consolidation), so searches can hit summaries and facts.
    consolidate: str | None = None


@dataclass(frozen=True)
class SearchVariant:
    """Extra fields sent with every search of a run, e.g. {"mode": "dense", "weights": {"dense": 1.0}}. They
    override what the harness sends itself (`now`); a `now` of None sends no reference time at all."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if reserved := sorted(HARNESS_FIELDS.intersection(self.fields)):
            raise ValueError(f"search variant {self.name!r}: {', '.join(reserved)} set by the harness, not a variant")


DEFAULT_VARIANT = SearchVariant(DEFAULT_VARIANT_NAME)


def split_spec(spec: str, option: str) -> tuple[str, list[tuple[str, str]]]:
    """`NAME[:KEY=VALUE,...]` as the name and its (key, raw value) pairs. Commas inside brackets, braces or double
    quotes belong to the value (`expand=["evidence","context"]`). Raises ValueError naming `option` when the spec
    is malformed."""
    name, _, settings = spec.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"{option} {spec!r}: expected NAME or NAME:KEY=VALUE,KEY=VALUE")
    pairs: list[tuple[str, str]] = []
    for item in _top_level_items(settings, f"{option} {spec!r}"):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} {spec!r}: {item!r} is not KEY=VALUE")
        pairs.append((key.strip(), value.strip()))
    return name, pairs


def _top_level_items(text: str, where: str) -> list[str]:
    items: list[str] = []
    depth = 0
    quoted = escaped = False
    start = 0
    for position, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{where}: unbalanced {char!r}")
        elif char == "," and depth == 0:
            items.append(text[start:position])
            start = position + 1
    if quoted or depth:
        raise ValueError(f"{where}: unbalanced brackets or quotes")
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def parse_configuration(spec: str) -> ServerConfiguration:
    """`--compare NAME[:KEY=VALUE,...]`: keys are upper-cased MEMSVC_* names without the prefix; values stay text."""
    name, pairs = split_spec(spec, "--compare")
    return ServerConfiguration(name, {key.upper(): value for key, value in pairs})


def parse_search_variant(spec: str) -> SearchVariant:
    """`--search NAME[:KEY=VALUE,...]`: a value is JSON when it parses as JSON (numbers, true/false, null, lists,
    objects), else text; a dotted key builds nested objects (`weights.dense=1,weights.lexical=0`)."""
    name, pairs = split_spec(spec, "--search")
    fields: dict[str, Any] = {}
    for key, raw in pairs:
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        if not leaf or any(not part for part in parents):
            raise ValueError(f"--search {spec!r}: {key!r} is not a field name")
        target = fields
        for depth, part in enumerate(parents):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--search {spec!r}: {'.'.join(parents[: depth + 1])!r} is given a value and fields")
            target = child
        if leaf in target:
            raise ValueError(f"--search {spec!r}: {key!r} is given twice")
        target[leaf] = value
    return SearchVariant(name, fields)


def check_unique(names: Sequence[str], option: str) -> None:
    """Raises ValueError when two configurations or variants share a name (their report runs would too)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{option}: the name {name!r} is used twice")
        seen.add(name)


def run_name(configuration: str, variant: str, *, configurations: int, variants_given: bool) -> str:
    """The report name of one (configuration, variant) run: `config/variant` when both vary, otherwise the one
    that does (the configuration's name when no search variants were given, as before variants existed)."""
    if not variants_given:
        return configuration
    if configurations == 1:
        return variant
    return f"{configuration}/{variant}"
