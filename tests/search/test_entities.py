"""Entity extraction for the memories' `entities` column and the query terms matched against it: pure functions, no
database."""

import pytest

from memsvc.search.entities import (
    MAX_ENTITIES,
    MAX_QUERY_TERMS,
    extract_entities,
    normalize_entity,
    query_terms,
)

# --- normalize_entity ---


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Alice", "alice"),
        ("  New   York ", "new york"),
        ("Alice's", "alice"),
        ("Alice’s", "alice"),
        ("(Bob's)", "bob"),
        ('"The Great Gatsby"', "the great gatsby"),
        ("@alice", "alice"),
        ("#MachineLearning", "machinelearning"),
        ("O’Brien", "o'brien"),
        ("snake_case_name", "snake_case_name"),
        ("C++", "c++"),
        ("https://example.com/", "https://example.com"),
    ],
)
def test_normalize_entity(raw: str, stored: str) -> None:
    assert normalize_entity(raw) == stored


def test_normalize_entity_is_idempotent() -> None:
    for raw in ["Alice Smith's", " Bank  of America. ", "@bob", "Node.js", "C#"]:
        once = normalize_entity(raw)
        assert normalize_entity(once) == once


# --- proper nouns ---


def test_name_in_the_middle_of_a_sentence() -> None:
    assert extract_entities("yesterday i had lunch with Alice near the office") == ["alice"]


def test_name_at_sentence_start() -> None:
    assert extract_entities("Alice called. Bob answered!") == ["alice", "bob"]


def test_common_words_at_sentence_start_are_not_entities() -> None:
    assert extract_entities("Yesterday I met Bob in Paris.") == ["bob", "paris"]


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for the help.",
        "Yes, that works.",
        "Hey, are you there?",
        "Please send it over.",
        "Let's go.",
        "Today was long. Tomorrow will be better.",
        "What did you do? Nothing much.",
        "I'm tired. I'll sleep. I think so.",
    ],
)
def test_sentence_openers_alone_yield_nothing(text: str) -> None:
    assert extract_entities(text) == []


def test_pronoun_i_is_never_an_entity() -> None:
    assert extract_entities("Then Alice and I left, and I paid") == ["alice"]


def test_sentence_start_after_colon_newline_and_opening_quote() -> None:
    text = 'Note: Bob is here\nThen Carol came\nShe said "Sure thing" to Dave'
    assert extract_entities(text) == ["bob", "carol", "dave"]


def test_days_and_months_are_not_entities() -> None:
    assert extract_entities("We met Alice on Monday in March and again in December.") == ["alice"]


def test_numbers_alone_are_not_entities() -> None:
    assert extract_entities("it cost 2024 dollars at 10am, the 3rd time, issue #42") == []


def test_multi_word_run_and_person_parts() -> None:
    # A short person-like run also stores each of its words: queries often name only the first name.
    assert extract_entities("I spoke with Alice Smith today.") == ["alice smith", "alice", "smith"]


def test_place_run_is_not_split_into_parts() -> None:
    assert extract_entities("We walked across the Golden Gate Bridge.") == ["golden gate bridge"]


def test_common_words_of_a_run_are_not_stored_as_parts() -> None:
    assert extract_entities("She moved to New York last year.") == ["new york", "york"]


def test_run_with_connectors() -> None:
    assert extract_entities("He works at Bank of America and Bank of the West.") == [
        "bank of america",
        "bank of the west",
    ]


def test_name_particles_join_a_run_but_are_not_parts() -> None:
    assert extract_entities("We listened to Ludwig van Beethoven.") == ["ludwig van beethoven", "ludwig", "beethoven"]


def test_connector_needs_a_capitalized_word_after_it() -> None:
    assert extract_entities("a gift from Alice of the finest kind") == ["alice"]


def test_runs_break_at_punctuation_and_newlines() -> None:
    assert extract_entities("Alice, Bob\nCarol") == ["alice", "bob", "carol"]


def test_possessive() -> None:
    assert extract_entities("Alice's dog chased Bob’s cat.") == ["alice", "bob"]


def test_possessive_ends_a_run() -> None:
    assert extract_entities("we took Alice's New York trip") == ["alice", "new york", "york"]


def test_honorific_is_dropped_and_its_period_does_not_open_a_sentence() -> None:
    assert extract_entities("I saw Dr. Smith and Mrs Jones") == ["smith", "jones"]


def test_capitalized_article_before_a_name_is_trimmed() -> None:
    assert extract_entities("we saw The Beatles") == ["beatles"]


def test_title_case_heading_yields_its_words_not_one_name() -> None:
    assert extract_entities("How To Cook The Best Steak Ever In Ten Minutes") == ["cook", "best", "steak", "minutes"]


def test_non_ascii_names() -> None:
    assert extract_entities("Zoë and José flew to Zürich.") == ["zoë", "josé", "zürich"]


def test_hyphenated_and_apostrophe_names() -> None:
    assert extract_entities("met Jean-Luc Picard and O'Brien") == [
        "jean-luc picard",
        "jean-luc",
        "picard",
        "o'brien",
    ]


# --- acronyms and identifiers ---


def test_acronyms() -> None:
    assert extract_entities("We moved from AWS to GCP; NASA approved.") == ["aws", "gcp", "nasa"]


def test_shouted_common_words_are_not_acronyms() -> None:
    assert extract_entities("OK so THIS is fine") == []


def test_mixed_case_names() -> None:
    assert extract_entities("my iPhone syncs PostgreSQL notes to GitHub via macOS") == [
        "iphone",
        "postgresql",
        "github",
        "macos",
    ]


def test_letters_with_digits() -> None:
    assert extract_entities("deploy k8s with gpt4 on S3 and EC2") == ["k8s", "gpt4", "s3", "ec2"]


def test_versions_are_not_entities() -> None:
    assert extract_entities("upgrade to 1.2.3 or v2.0 or 3.11.4 or v2") == []


def test_code_identifiers() -> None:
    assert extract_entities("call snake_case_name from pkg.module or os.path.join") == [
        "snake_case_name",
        "pkg.module",
        "os.path.join",
    ]


def test_abbreviations_with_periods() -> None:
    assert extract_entities("fruit, e.g. apples, and the U.S. market") == ["u.s"]


def test_programming_languages_with_symbols() -> None:
    assert extract_entities("she writes C++ and C#") == ["c++", "c#"]


# --- emails, URLs, handles, hashtags ---


def test_email() -> None:
    assert extract_entities("write to Alice.Smith@Example.com please") == ["alice.smith@example.com"]


def test_url_and_its_host() -> None:
    assert extract_entities("see (https://www.GitHub.com/acme/app).") == [
        "https://www.github.com/acme/app",
        "github.com",
    ]


def test_bare_domain() -> None:
    assert extract_entities("it is hosted on example.com.") == ["example.com"]


def test_handles_and_hashtags_are_stored_without_sigil() -> None:
    assert extract_entities("ping @bob_dev about #MachineLearning") == ["bob_dev", "machinelearning"]


# --- quoted titles ---


def test_quoted_title_is_one_entity_with_and_without_article() -> None:
    assert extract_entities('She loved "The Great Gatsby" a lot.') == ["the great gatsby", "great gatsby"]


def test_quoted_title_with_small_words() -> None:
    assert extract_entities('we read "Pride and Prejudice"') == ["pride and prejudice"]


def test_quoted_speech_is_not_a_title() -> None:
    assert extract_entities('he said "Call Bob tomorrow" and "yes" and "Alice went home"') == ["bob", "alice"]


def test_quoted_span_longer_than_six_words_is_not_a_title() -> None:
    text = 'the book "Harry Potter And The Chamber Of Secrets Again" sold'
    assert "harry potter and the chamber of secrets again" not in extract_entities(text)


# --- uniqueness, order, limits ---


def test_unique_in_order_of_first_appearance() -> None:
    text = "Bob met Alice. Alice met Carol, then Bob met Carol and alice@example.com wrote to Bob."
    assert extract_entities(text) == ["bob", "alice", "carol", "alice@example.com"]


def test_at_most_max_entities() -> None:
    names = [f"Name{chr(ord('a') + i % 26)}{chr(ord('a') + i // 26)}" for i in range(MAX_ENTITIES + 10)]
    entities = extract_entities("we met " + ", ".join(names))
    assert len(entities) == MAX_ENTITIES
    assert entities == [n.lower() for n in names[:MAX_ENTITIES]]


def test_empty_and_plain_text() -> None:
    assert extract_entities("") == []
    assert extract_entities("just some lowercase words here.") == []


def test_long_text_finishes() -> None:
    text = ("Alice Smith met Bob at the Golden Gate Bridge; see https://example.com and #travel. " * 50).strip()
    entities = extract_entities(text)
    assert entities[:3] == ["alice smith", "alice", "smith"]
    assert len(entities) <= MAX_ENTITIES


# --- query_terms ---


def test_query_terms_for_a_lowercase_query() -> None:
    terms = query_terms("what did alice tell bob about new york")
    assert {"alice", "bob", "new york"} <= set(terms)
    assert not {"what", "did", "tell", "about"} & set(terms)


def test_query_terms_drop_ngrams_starting_or_ending_with_a_stopword() -> None:
    terms = query_terms("what did alice tell bob about new york")
    assert "alice tell" not in terms
    assert "about new" not in terms
    assert "did alice" not in terms


def test_query_terms_keep_stopwords_inside_ngrams() -> None:
    assert "bank of america" in query_terms("tell me about the bank of america account")


def test_query_terms_include_extracted_entities_first() -> None:
    terms = query_terms("What did Alice Smith say?")
    assert terms[:3] == ["alice smith", "alice", "smith"]


def test_query_terms_match_what_extraction_stores() -> None:
    memory = "Alice Smith's email is alice@example.com; she posts as @alice_s about #ML and pkg.module on example.com."
    query = "what is alice's email alice@example.com, and what about alice_s, ml, pkg.module and example.com"
    stored = set(extract_entities(memory))
    assert {"alice", "alice@example.com", "alice_s", "ml", "pkg.module", "example.com"} <= stored & set(
        query_terms(query)
    )


def test_query_terms_strip_possessives() -> None:
    assert "bob" in query_terms("when is bob's birthday")


def test_query_terms_do_not_span_punctuation() -> None:
    assert "paris london" not in query_terms("paris, london")


def test_query_terms_are_unique_and_capped() -> None:
    query = " ".join(f"word{i} term{i}" for i in range(100))
    terms = query_terms(query)
    assert len(terms) == MAX_QUERY_TERMS
    assert len(set(terms)) == len(terms)


def test_query_terms_skip_contractions_and_numbers() -> None:
    assert query_terms("don't we've 2024") == []


def test_query_terms_of_an_empty_query() -> None:
    assert query_terms("") == []
    assert query_terms("what did you say?") == []
