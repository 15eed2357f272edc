"""Every chart value is documented in place, typed in values.schema.json, and listed in the chart's README."""

import json

import pytest

from tests.helm import values_doc


def test_every_value_is_documented_in_place() -> None:
    assert values_doc.problems(values_doc.VALUES.read_text()) == []


def test_undocumented_or_doubly_documented_values_are_found() -> None:
    text = (
        "# A section.\nsection:\n  # -- Documented.\n  good: 1\n  bad: 2\n"
        "# -- An object.\nobj:\n  # -- Inside.\n  key: 3\n"
    )
    assert values_doc.problems(text) == [
        "section.bad: no `# --` comment",
        "obj.key: documented inside the documented obj",
    ]


def test_every_documented_value_has_a_type_in_the_schema() -> None:
    schema = json.loads(values_doc.SCHEMA.read_text())
    for key in values_doc.value_keys(values_doc.VALUES.read_text()):
        if key.doc:
            assert values_doc.schema_type(schema, key.path), key.dotted


def test_the_readme_values_table_is_current() -> None:
    schema = json.loads(values_doc.SCHEMA.read_text())
    readme = values_doc.README.read_text()
    expected = values_doc.readme_with_table(readme, values_doc.VALUES.read_text(), schema)
    if readme != expected:
        pytest.fail(
            "helm/memsvc/README.md's values table is out of date: run `python -m tests.helm.values_doc --write`"
        )
