"""Server configurations and search variants from their command-line specs, and how their runs are named."""

import pytest

from memsvc.eval.command import search_variants, server_configurations
from memsvc.eval.variants import (
    DEFAULT_VARIANT,
    SearchVariant,
    ServerConfiguration,
    parse_configuration,
    parse_search_variant,
    run_name,
)


def test_values_are_json_when_they_parse_and_text_otherwise():
    variant = parse_search_variant(
        'mixed:mode=dense,parse_time=false,diversity=0.3,top=3,expand=["evidence"],'
        "recency_half_life_days=null,now=2023-05-08T00:00:00+00:00,label=hello world"
    )

    assert variant == SearchVariant(
        "mixed",
        {
            "mode": "dense",
            "parse_time": False,
            "diversity": 0.3,
            "top": 3,
            "expand": ["evidence"],
            "recency_half_life_days": None,
            "now": "2023-05-08T00:00:00+00:00",
            "label": "hello world",
        },
    )


def test_dotted_keys_build_nested_objects():
    variant = parse_search_variant("fused:weights.dense=1,weights.lexical=0,weights.entity=0.5,mode=hybrid")

    assert variant.fields == {"weights": {"dense": 1, "lexical": 0, "entity": 0.5}, "mode": "hybrid"}


def test_commas_inside_lists_objects_and_strings_belong_to_the_value():
    variant = parse_search_variant('ents:entities=["Rome", "Caroline"],weights={"dense": 1, "time": 0},q="a, b"')

    assert variant.fields == {"entities": ["Rome", "Caroline"], "weights": {"dense": 1, "time": 0}, "q": "a, b"}


def test_a_name_alone_is_a_variant_without_fields():
    assert parse_search_variant("plain") == SearchVariant("plain", {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (":mode=dense", "expected NAME"),
        ("x:mode", "'mode' is not KEY=VALUE"),
        ("x:=1", "is not KEY=VALUE"),
        ("x:mode=dense,mode=lexical", "'mode' is given twice"),
        ("x:weights=1,weights.dense=2", "'weights' is given a value and fields"),
        ("x:weights..dense=1", "is not a field name"),
        ('x:entities=["a"', "unbalanced"),
        ("x:entities=a]", "unbalanced"),
        ("x:top_k=5", "top_k set by the harness"),
        ("x:query=hi", "query set by the harness"),
    ],
)
def test_malformed_variants_are_refused(spec: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_search_variant(spec)


def test_configurations_keep_text_values_and_upper_case_keys():
    assert parse_configuration("plain:contextual_indexing=false,EMBEDDING_DIM=256") == ServerConfiguration(
        "plain", {"CONTEXTUAL_INDEXING": "false", "EMBEDDING_DIM": "256"}
    )


def test_command_defaults_and_duplicate_names():
    assert search_variants([]) == [DEFAULT_VARIANT]
    assert server_configurations([], "mine") == [ServerConfiguration("mine")]
    with pytest.raises(SystemExit, match="'a' is used twice"):
        search_variants(["a:mode=dense", "a:mode=lexical"])
    with pytest.raises(SystemExit, match="'c' is used twice"):
        server_configurations(["c", "c:EMBEDDING_DIM=128"], "default")
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        search_variants(["a:mode"])


def test_runs_are_named_by_what_varies():
    # No --search: as before variants existed, a run is its configuration.
    assert run_name("minilm-384", "default", configurations=2, variants_given=False) == "minilm-384"
    assert run_name("default", "default", configurations=1, variants_given=False) == "default"
    # Variants on one configuration: the variant; on several: both.
    assert run_name("default", "dense", configurations=1, variants_given=True) == "dense"
    assert run_name("plain", "dense", configurations=2, variants_given=True) == "plain/dense"
