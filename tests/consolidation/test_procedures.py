"""How-to episodes in history: lists and sequencing words, steps over several turns, triggers and titles, and what
is not an episode."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from memsvc.consolidation.procedures import MAX_STEPS, Episode, find_episodes, title_from_trigger
from memsvc.consolidation.types import HistoryItem

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def turns(*lines: tuple[str | None, str], session: str | None = "s1", kind: str = "dialogue") -> list[HistoryItem]:
    """One item per (speaker, text), a minute apart, all of one session and type."""
    return [
        HistoryItem(uuid.uuid4(), text, kind, START + timedelta(minutes=i), session, speaker=speaker)
        for i, (speaker, text) in enumerate(lines)
    ]


def ids(items: list[HistoryItem], *positions: int) -> tuple[uuid.UUID, ...]:
    return tuple(items[p].memory_id for p in positions)


def retimed(items: list[HistoryItem]) -> list[HistoryItem]:
    """The items with occurred_at increasing over the whole list (for lists put together from several turns())."""
    return [
        HistoryItem(i.memory_id, i.text, i.type, START + timedelta(minutes=n), i.session_id, i.speaker)
        for n, i in enumerate(items)
    ]


def test_a_numbered_list_answering_a_question_is_an_episode_with_the_question_as_trigger() -> None:
    items = turns(
        ("user", "How do I rotate the staging API keys?"),
        ("assistant", "Sure, here's how:\n1. Open the vault.\n2) Generate new keys.\nStep 3: Update the secrets.\nBye"),
    )
    [episode] = find_episodes(items)
    assert episode.trigger == "How do I rotate the staging API keys?"
    assert episode.title == "rotate the staging API keys"
    assert episode.steps == ("Open the vault", "Generate new keys", "Update the secrets")  # the outro is no step
    assert episode.source_ids == ids(items, 0, 1)


def test_a_bulleted_list_is_an_episode() -> None:
    items = turns(("assistant", "Before a release:\n- Freeze the main branch\n* Tag the commit\n• Announce it in #eng"))
    [episode] = find_episodes(items)
    assert episode.steps == ("Freeze the main branch", "Tag the commit", "Announce it in #eng")
    assert episode.trigger == "Before a release"


def test_inline_first_then_finally_in_one_turn() -> None:
    items = turns(
        ("user", "The migration keeps failing, what should I do?"),
        ("assistant", "First, stop the worker. Then run the migration again. Finally, start the worker. Good luck!"),
    )
    [episode] = find_episodes(items)
    assert episode.steps == ("stop the worker", "run the migration again", "start the worker")
    assert episode.trigger == "The migration keeps failing, what should I do?"
    assert episode.source_ids == ids(items, 0, 1)


def test_two_sequencing_words_make_the_clause_before_the_first_one_a_step() -> None:
    items = turns(("assistant", "Open the vault, then generate new keys, and finally restart the service."))
    [episode] = find_episodes(items)
    assert episode.steps == ("Open the vault", "generate new keys", "restart the service")


def test_inline_numbered_steps() -> None:
    items = turns(("assistant", "To clear the cache: 1) stop the app 2) delete /var/cache/app, 3) start it. Cheers"))
    [episode] = find_episodes(items)
    assert episode.steps == ("stop the app", "delete /var/cache/app", "start it")
    assert episode.title == "clear the cache"


def test_steps_over_consecutive_turns_with_acknowledgements_in_between() -> None:
    items = turns(
        ("user", "Can you walk me through resetting my router?"),
        ("assistant", "Sure! First, unplug the router."),
        ("user", "ok"),
        ("assistant", "Then wait thirty seconds and plug it back in."),
        ("user", "done"),
        ("user", "the light is blinking"),
        ("assistant", "Finally, log in at 192.168.0.1 and check the status page."),
    )
    [episode] = find_episodes(items)
    assert episode.steps == (
        "unplug the router",
        "wait thirty seconds and plug it back in",
        "log in at 192.168.0.1 and check the status page",
    )
    assert episode.title == "resetting my router"
    assert episode.source_ids == ids(items, 0, 1, 3, 6)  # not the acknowledgements


def test_numbered_steps_over_turns_continue_with_the_next_number_only() -> None:
    items = turns(
        ("assistant", "Step 1: open the vault"),
        ("user", "ok"),
        ("assistant", "Step 2: generate new keys"),
        ("assistant", "Step 3: restart the pods"),
        ("assistant", "Step 1: something else entirely"),
    )
    episodes = find_episodes(items, min_steps=2)
    assert [e.steps for e in episodes] == [("open the vault", "generate new keys", "restart the pods")]
    assert episodes[0].source_ids == ids(items, 0, 2, 3)


def test_too_many_turns_in_between_break_the_sequence() -> None:
    lines: list[tuple[str | None, str]] = [("assistant", "First, unplug the router.")]
    lines += [("user", "ok")] * 3 + [("assistant", "Then plug it back in.")]
    items = turns(*lines)
    assert find_episodes(items, max_gap=3)
    assert find_episodes(items, max_gap=2) == []


def test_talk_before_a_lone_continuing_word_is_no_step() -> None:
    items = turns(
        ("assistant", "First, unplug the router."),
        ("user", "ok"),
        ("assistant", "You should see the light go off. Then wait ten seconds."),
    )
    [episode] = find_episodes(items)
    assert episode.steps == ("unplug the router", "wait ten seconds")


def test_a_turn_of_the_same_speaker_without_steps_ends_the_sequence() -> None:
    items = turns(
        ("assistant", "First, unplug the router."),
        ("assistant", "By the way, is it the white one?"),
        ("assistant", "Then plug it back in."),
    )
    assert find_episodes(items) == []


def test_a_step_marked_as_the_last_ends_the_sequence() -> None:
    items = turns(
        ("assistant", "First, unplug the router. Finally, plug it back in."),
        ("assistant", "Then have a coffee."),
    )
    [episode] = find_episodes(items)
    assert episode.steps == ("unplug the router", "plug it back in")


def test_the_introducing_sentence_is_the_trigger_when_no_request_precedes() -> None:
    items = turns(
        ("user", "Thanks for the help earlier."),
        ("assistant", "Happy to help! To deploy the billing service:\n1. Build the image\n2. Push it\n3. Restart pods"),
    )
    [episode] = find_episodes(items)
    assert episode.trigger == "To deploy the billing service"
    assert episode.title == "deploy the billing service"
    assert episode.source_ids == ids(items, 1)  # the thanks is no request


def test_the_first_step_is_the_trigger_when_nothing_introduces_the_steps() -> None:
    items = turns(("assistant", "Sure, here's how:\n1. Export the Q3 report\n2. Email it to finance"))
    [episode] = find_episodes(items)
    assert episode.trigger == "Export the Q3 report"
    assert episode.title == "export the Q3 report"


def test_a_request_of_the_same_speaker_is_no_trigger() -> None:
    items = turns(
        ("assistant", "Can you check the logs?"),
        ("assistant", "1. Open Grafana\n2. Pick the billing dashboard"),
    )
    [episode] = find_episodes(items)
    assert episode.trigger == "Open Grafana"
    assert episode.source_ids == ids(items, 1)


def test_a_request_leads_to_one_episode_only() -> None:
    items = turns(
        ("user", "How do I deploy and roll back the app?"),
        ("assistant", "1. Build\n2. Push\n\nTo roll back:\n1. Revert the tag\n2. Redeploy"),
        ("assistant", "1. Watch the dashboards\n2. Page the on-call if errors rise"),
    )
    first, second, third = find_episodes(items)
    assert (first.trigger, first.steps) == ("How do I deploy and roll back the app?", ("Build", "Push"))
    assert (second.trigger, second.steps) == ("To roll back", ("Revert the tag", "Redeploy"))
    assert third.trigger == "Watch the dashboards"  # the question is past another episode's steps
    assert [e.source_ids for e in (first, second, third)] == [ids(items, 0, 1), ids(items, 1), ids(items, 2)]


@pytest.mark.parametrize(
    ("trigger", "title"),
    [
        ("How do I rotate the staging API keys?", "rotate the staging API keys"),
        ("Can you walk me through deploying the billing service?", "deploying the billing service"),
        ("Could you please restart the Redis cache?", "restart the Redis cache"),
        ("Please clear the build cache.", "clear the build cache"),
        ("Help me set up CI for the repo", "set up CI for the repo"),
        ("I need to renew the TLS certificate.", "renew the TLS certificate"),
        ("How to export a report:", "export a report"),
        ("What's the best way to add a new tenant?", "add a new tenant"),
        ("To deploy the billing service:", "deploy the billing service"),
        ("To rotate the staging keys, you need vault access.", "rotate the staging keys"),
        ("Walk me through how to onboard a customer, please?", "onboard a customer"),
        ("Ok so how can I reset my password?", "reset my password"),
        ("Export the Q3 report", "export the Q3 report"),
        ("AWS credentials rotation", "AWS credentials rotation"),
        ("GitHub release checklist.", "GitHub release checklist"),
        ("I'd like to set up SSO for Okta, can you help?", "set up SSO for Okta"),
    ],
)
def test_title_strips_request_phrasing(trigger: str, title: str) -> None:
    assert title_from_trigger(trigger) == title


def test_a_long_title_is_cut_at_a_word_boundary() -> None:
    title = title_from_trigger("How do I " + "configure the very long named service " * 5 + "?")
    assert len(title) <= 80
    assert title.startswith("configure the very long named service")
    assert not title.endswith(" ")
    assert title.split()[-1] in {"configure", "the", "very", "long", "named", "service"}


def test_semantic_and_procedural_items_give_no_steps() -> None:
    facts = turns(("assistant", "1. Alice lives in Lisbon\n2. Alice works at Feedzai"), kind="semantic")
    procedures = turns(("assistant", "First, open the vault. Then rotate the keys."), kind="procedural")
    assert find_episodes(retimed(facts + procedures)) == []
    assert find_episodes(turns(("assistant", "1. Alice lives in Lisbon\n2. Alice works at Feedzai")))  # as dialogue


def test_semantic_items_between_step_turns_are_skipped() -> None:
    items = retimed(
        turns(("assistant", "First, unplug the router."))
        + turns(("user", "The user owns a white router."), kind="semantic")
        + turns(("assistant", "Then plug it back in."))
    )
    [episode] = find_episodes(items, max_gap=0)
    assert episode.steps == ("unplug the router", "plug it back in")
    assert episode.source_ids == ids(items, 0, 2)


def test_episodic_items_without_speaker_count() -> None:
    items = turns((None, "Deployed the billing service: 1) built the image 2) pushed it 3) restarted the pods."))
    [episode] = find_episodes(items)
    assert episode.steps == ("built the image", "pushed it", "restarted the pods")
    assert episode.title == "deployed the billing service"


@pytest.mark.parametrize(
    "text",
    [
        "First, restart the server.",
        "1. Restart the server",
        "- Restart the server",
        "Open the vault, then generate new keys.",  # a single "then" is not enough
    ],
)
def test_a_single_step_or_a_lone_then_is_not_an_episode(text: str) -> None:
    assert find_episodes(turns(("assistant", text))) == []


def test_min_steps() -> None:
    items = turns(("assistant", "1. Build the image\n2. Push it"))
    assert len(find_episodes(items, min_steps=2)) == 1
    assert find_episodes(items, min_steps=3) == []


def test_steps_in_two_sessions_do_not_merge() -> None:
    lines: list[tuple[str | None, str]] = [("assistant", "First, open the vault."), ("assistant", "Then rotate keys.")]
    one_session = turns(*lines)
    assert [e.steps for e in find_episodes(one_session)] == [("open the vault", "rotate keys")]
    two_sessions = retimed(turns(lines[0], session="s1") + turns(lines[1], session="s2"))
    assert find_episodes(two_sessions) == []


def test_sessions_interleaved_in_history_are_followed_separately() -> None:
    items = retimed(
        turns(("user", "How do I rotate the keys?"), session="a")
        + turns(("assistant", "First, water the plants."), session="b")
        + turns(("assistant", "First, open the vault."), session="a")
        + turns(("assistant", "Then feed the cat."), session="b")
        + turns(("assistant", "Then rotate the keys."), session="a")
    )
    first, second = find_episodes(items)
    assert (first.title, first.steps, first.source_ids) == (
        "rotate the keys",
        ("open the vault", "rotate the keys"),
        ids(items, 0, 2, 4),
    )
    assert (second.steps, second.source_ids) == (("water the plants", "feed the cat"), ids(items, 1, 3))


def test_text_joins_title_and_steps() -> None:
    episode = Episode(
        trigger="How do I rotate the staging API keys?",
        title="rotate the staging API keys",
        steps=("Open the vault", "Generate new keys", "AWS: update the secret"),
        source_ids=(uuid.uuid4(),),
    )
    assert episode.text == "rotate the staging API keys: open the vault; generate new keys; AWS: update the secret"


def test_source_ids_are_in_history_order_without_duplicates() -> None:
    items = turns(
        ("user", "Could you show me how to ship a hotfix?"),
        ("assistant", "First, branch off the release tag. Then cherry-pick the fix."),
        ("user", "ok"),
        ("assistant", "Next, run the smoke tests."),
        ("assistant", "Finally, tag and deploy."),
    )
    [episode] = find_episodes(items)
    assert len(episode.steps) == 4
    assert episode.source_ids == ids(items, 0, 1, 3, 4)


def test_episodes_come_in_history_order() -> None:
    items = turns(
        ("user", "How do I rotate the keys?"),
        ("assistant", "1. Open the vault\n2. Rotate"),
        ("user", "And how do I deploy?"),
        ("assistant", "1. Build\n2. Ship"),
    )
    assert [e.title for e in find_episodes(items)] == ["rotate the keys", "deploy"]


def test_sub_steps_notes_and_code_stay_with_their_step() -> None:
    text = (
        "1. Stop the app\n"
        "2. Run the migration:\n"
        "```\n"
        "- not a bullet\n"
        "alembic upgrade head\n"
        "```\n"
        "3. Start the app\n"
        "   - check the logs\n"
        "   - check /health\n"
        "Ping me if anything breaks."
    )
    [episode] = find_episodes(turns(("assistant", text)))
    assert episode.steps == (
        "Stop the app",
        "Run the migration: - not a bullet; alembic upgrade head",
        "Start the app; check the logs; check /health",
    )


def test_prose_under_a_heading_belongs_to_its_step() -> None:
    text = "### Step 1: Install\nRun pip install memsvc.\n### Step 2: Configure\nSet the database URL."
    [episode] = find_episodes(turns(("assistant", text)))
    assert episode.steps == ("Install. Run pip install memsvc", "Configure. Set the database URL")


def test_steps_are_capped() -> None:
    text = "\n".join(f"{n}. Do thing {n}" for n in range(1, 31))
    [episode] = find_episodes(turns(("assistant", text)))
    assert len(episode.steps) == MAX_STEPS
    assert episode.steps[-1] == f"Do thing {MAX_STEPS}"


def test_ordinary_chat_has_no_episodes() -> None:
    items = turns(
        ("user", "Hi! How was your weekend?"),
        ("assistant", "Great, thanks. We might go hiking next week. The first time was fun."),
        ("user", "Then again, I prefer the beach. Next time invite me!"),
        ("assistant", "Sure. I moved to Lisbon in May and started at Feedzai on June 3."),
        ("user", "Next.js or Remix for the new site?"),
    )
    assert find_episodes(items) == []


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        find_episodes([], min_steps=0)
    with pytest.raises(ValueError):
        find_episodes([], max_gap=-1)
    assert find_episodes([]) == []
