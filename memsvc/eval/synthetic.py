"""A synthetic EverMemBench-S ladder: a few people's memories (dialogue turns, events, facts that change over time,
procedures), queries over them with gold evidence and collision-tested near-miss hard negatives, and distractor
memories of a synthetic crowd that fill each corpus-ladder rung.

Every document is generated from a structured `Fact` and every query from the `Need`s it asks about, so whether a
document answers a query is decided on those structures (`answers`), never by matching text. `verify` checks the
whole corpus with it: each gold answers its query, each need is covered by a gold, and no other document (hard
negative, another person's memory or distractor) answers it. `generate` runs `verify` before returning.
"""

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import count, islice
from typing import NamedTuple

from memsvc.eval.dataset import Dataset, Document, Query

SYNTHETIC_FORMAT = "synthetic"

TODAY = date(2025, 1, 1)  # the generated world's present: "now" questions ask what holds on this day
_TOMORROW = TODAY + timedelta(days=1)

FIRST_NAMES = (
    "Alice", "Bruno", "Carmen", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Keiko", "Liam", "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Boris", "Clara", "Diego",
    "Emil", "Fatima", "Gustav", "Hana", "Ivan", "Julia", "Kofi", "Lena", "Marco", "Nadia",
)  # fmt: skip
LAST_NAMES = (
    "Moreau", "Silva", "Okafor", "Lindqvist", "Tanaka", "Novak", "Haddad", "Brennan", "Costa", "Fischer",
    "Ivanova", "Kowalski", "Mendes", "Nakamura", "Oduya", "Petrov", "Quint", "Reyes", "Schmidt", "Takahashi",
    "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Almeida", "Becker", "Castillo", "Dubois",
    "Eriksen", "Ferreira", "Garcia", "Horvat", "Iqbal", "Jensen", "Kim", "Larsen", "Muller", "Nilsson",
)  # fmt: skip
CITIES = (
    "Lisbon", "Porto", "Madrid", "Barcelona", "Berlin", "Munich", "Vienna", "Prague", "Warsaw", "Krakow",
    "Amsterdam", "Rotterdam", "Brussels", "Lyon", "Marseille", "Milan", "Turin", "Zurich", "Geneva", "Copenhagen",
    "Oslo", "Stockholm", "Helsinki", "Dublin",
)  # fmt: skip
COMPANIES = (
    "Lumen Analytics", "Northwind Logistics", "Bluefin Robotics", "Cedar Health", "Orbital Foods", "Quartz Media",
    "Harbor Bank", "Tessellate Games", "Greenline Energy", "Atlas Insurance", "Juniper Labs", "Meridian Travel",
    "Kestrel Security", "Saffron Retail", "Polaris Education", "Riverstone Legal",
)  # fmt: skip
ROLES = (
    "data analyst", "product manager", "nurse", "backend engineer", "accountant", "teacher", "designer",
    "sales lead", "pharmacist", "architect", "editor", "recruiter",
)  # fmt: skip
# Gender-neutral relations whose holder plausibly lives and works elsewhere (a neighbour or manager would not).
RELATIONS = ("best friend", "cousin", "mentor", "sibling", "childhood friend", "tennis partner", "godparent")
ALLERGENS = ("peanuts", "shellfish", "sesame", "strawberries", "kiwi", "soy", "mustard", "celery", "hazelnuts", "eggs")
PET_KINDS = ("cat", "dog", "parrot", "rabbit", "tortoise", "hamster")
PET_NAMES = ("Miso", "Biscuit", "Pepper", "Luna", "Olive", "Pixel", "Tofu", "Nacho", "Ziggy", "Maple", "Waffle", "Juno")
TOPICS = ("machine learning", "urban gardening", "cybersecurity", "climate policy", "game design", "public health")
CUISINES = ("Thai", "Ethiopian", "Peruvian", "Georgian", "Korean", "Sicilian", "Lebanese", "Mexican")
CAUSES = ("animal shelter", "food bank", "literacy charity", "river clean-up")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# Things people did; "{city}" marks the ones that name a city, which is then one of the event's mentions.
EVENTS = (
    "ran the {city} half marathon",
    "attended a conference on {topic} in {city}",
    "went hiking in the hills outside {city}",
    "took a weekend cooking class on {cuisine} food",
    "gave a talk about {topic} at a local meetup",
    "finished an online course on {topic}",
    "spent a week of holiday in {city}",
    "volunteered at a {cause} fundraiser",
    "sang in a choir concert in {city}",
    "played in a chess tournament in {city}",
)
NOTES = (
    "The {city} office closes early on Fridays in summer.",
    "Remember that the {city} library book club meets on {weekday}s.",
    "Parking permits in {city} have to be renewed every January.",
    "The {cuisine} place near the station in {city} stopped taking reservations.",
    "The {topic} newsletter moved to a monthly schedule.",
)
USER_FILLERS = (
    "Can you remind me to call the bank tomorrow?",
    "What's a good podcast for a long drive?",
    "Could you draft a short thank-you note for my team?",
    "Please add oat milk to the shopping list.",
    "Any tips for sleeping better?",
    "Can you find a quiet cafe for working this afternoon?",
    "How long should I boil an egg for a runny yolk?",
)
ASSISTANT_FILLERS = (
    "Done, I've added it.",
    "Sure, here is a short draft you can adapt.",
    "Happy to help with that.",
    "Noted.",
    "Here are a few suggestions.",
)


@dataclass(frozen=True)
class Procedure:
    """A how-to topic; `{contact}` in a step is filled with one of the owner's contacts."""

    key: str
    phrase: str  # completes "How does NAME ...?"
    title: str
    trigger: str
    steps: tuple[str, ...]


PROCEDURES = (
    Procedure(
        "expense_report",
        "file an expense report",
        "Filing an expense report",
        "back from a business trip",
        (
            "Collect every receipt from the trip",
            "Photograph the receipts in the expenses app",
            "Tag each item with the project code",
            "Submit the claim and ask {contact} to approve it",
        ),
    ),
    Procedure(
        "laptop_backup",
        "back up the laptop",
        "Backing up the laptop",
        "on the first weekend of each month",
        (
            "Plug in the external drive",
            "Close every open application",
            "Run a full backup",
            "Check the backup log for errors and tell {contact} if any appear",
        ),
    ),
    Procedure(
        "router_reset",
        "reset the home Wi-Fi router",
        "Resetting the home Wi-Fi router",
        "the internet connection drops",
        (
            "Unplug the router for thirty seconds",
            "Plug it back in and wait for the lights to settle",
            "Log in to the router admin page and check the connection",
            "Call {contact} if it is still offline",
        ),
    ),
    Procedure(
        "tax_return",
        "prepare the yearly tax return",
        "Preparing the yearly tax return",
        "in April each year",
        (
            "Download the annual income statement",
            "Gather the medical and donation receipts",
            "Fill in the online tax form",
            "Ask {contact} to double-check the deductions before submitting",
        ),
    ),
    Procedure(
        "sourdough",
        "bake sourdough bread",
        "Baking sourdough bread",
        "the starter has doubled",
        (
            "Feed the starter in the morning",
            "Mix flour, water and salt with the starter",
            "Fold the dough every half hour for two hours",
            "Bake in a hot Dutch oven and share a loaf with {contact}",
        ),
    ),
    Procedure(
        "bike_tyre",
        "fix a flat bike tyre",
        "Fixing a flat bike tyre",
        "a tyre goes flat",
        (
            "Remove the wheel and lever off the tyre",
            "Find the puncture by pumping the tube under water",
            "Patch the hole and let the glue dry",
            "Refit the tyre and borrow {contact}'s pump to inflate it",
        ),
    ),
    Procedure(
        "plant_care",
        "look after the plants while travelling",
        "Looking after the plants while travelling",
        "going away for more than three days",
        (
            "Move the plants out of direct sunlight",
            "Water them thoroughly the evening before leaving",
            "Set up the self-watering spikes",
            "Leave a spare key with {contact}",
        ),
    ),
)


class Fact(NamedTuple):
    """What a document states, as data: `subject`'s `attribute` is `value` from `start` until `end` (exclusive).
    `mentions` are other entities the text names (a city the event took place in, a contact in a step)."""

    subject: str
    attribute: str  # "lives_in", "works_at", "allergy", "pet", "event", "relation:<kind>", "procedure:<key>"
    value: str
    start: date = date.min
    end: date = date.max
    mentions: tuple[str, ...] = ()


class Need(NamedTuple):
    """One piece of evidence a query asks for: `subject`'s `attribute` as it held at some time in [start, end)."""

    subject: str
    attribute: str
    start: date = date.min
    end: date = date.max

    def satisfied_by(self, fact: Fact) -> bool:
        return (
            fact.subject == self.subject
            and fact.attribute == self.attribute
            and fact.start < self.end
            and self.start < fact.end
        )


@dataclass(frozen=True)
class SyntheticDocument(Document):
    """A document with the facts its text states (none for small talk and notes, which answer nothing). They
    are never sent to the service: they only decide, for `answers`, which queries the document answers."""

    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class SyntheticQuery(Query):
    """A query with the evidence it needs: each need is met by at least one gold, and only golds meet any."""

    needs: tuple[Need, ...] = ()


class CollisionError(ValueError):
    """The generated corpus breaks its contract: a non-gold document answers a query, or a gold does not."""


def answers(query: Query, document: Document) -> bool:
    """True when `document` states a fact `query` needs: same subject, same attribute, valid at a time the query
    asks about. Decided on the generated structures only; documents without facts answer nothing."""
    if not isinstance(query, SyntheticQuery):
        raise TypeError(f"query {query.id!r} is not a synthetic query: it has no needs to check against")
    facts = document.facts if isinstance(document, SyntheticDocument) else ()
    return any(need.satisfied_by(fact) for fact in facts for need in query.needs)


def verify(dataset: Dataset) -> None:
    """Raise `CollisionError` unless: ids are unique; every query is synthetic with needs, gold and hard
    negatives; every gold and hard negative exists inside the smallest rung; every gold answers its query and
    every need is met by a gold; and no other document in the whole corpus answers any query (checked for each
    document against the queries that need its subject and attribute, so it is linear in the corpus)."""
    problems: list[str] = []
    position: dict[str, int] = {}
    for index, doc in enumerate(dataset.documents):
        if position.setdefault(doc.id, index) != index:
            problems.append(f"document id {doc.id} is used twice")
    smallest = dataset.rungs()[0] if dataset.documents else 0
    golds: dict[str, set[str]] = {}
    needed_by: dict[tuple[str, str], list[SyntheticQuery]] = {}
    for query in dataset.queries:
        if not isinstance(query, SyntheticQuery) or not query.needs:
            problems.append(f"query {query.id} has no needs")
            continue
        golds[query.id] = set(query.gold)
        if not query.gold or not query.hard_negatives:
            problems.append(f"query {query.id} has {len(query.gold)} gold, {len(query.hard_negatives)} hard negatives")
        if golds[query.id] & set(query.hard_negatives):
            problems.append(f"query {query.id} lists a gold document as a hard negative")
        gold_facts: list[Fact] = []
        for doc_id in (*query.gold, *query.hard_negatives):
            where = position.get(doc_id)
            if where is None:
                problems.append(f"query {query.id} refers to missing document {doc_id}")
            elif where >= smallest:
                problems.append(f"query {query.id}: document {doc_id} is outside the smallest rung ({smallest})")
            elif doc_id in golds[query.id]:
                doc = dataset.documents[where]
                if not answers(query, doc):
                    problems.append(f"gold {doc_id} does not answer query {query.id}")
                if isinstance(doc, SyntheticDocument):
                    gold_facts.extend(doc.facts)
        for need in query.needs:
            if not any(need.satisfied_by(fact) for fact in gold_facts):
                problems.append(f"query {query.id}: no gold meets {need}")
            needed_by.setdefault((need.subject, need.attribute), []).append(query)
    for doc in dataset.documents:
        facts = doc.facts if isinstance(doc, SyntheticDocument) else ()
        concerned = {query.id: query for fact in facts for query in needed_by.get((fact.subject, fact.attribute), ())}
        for query in concerned.values():
            if doc.id not in golds[query.id] and answers(query, doc):
                role = "hard negative" if doc.id in query.hard_negatives else "non-gold document"
                problems.append(f"{role} {doc.id} ({doc.text!r}) answers query {query.id} ({query.text!r})")
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise CollisionError("; ".join(problems[:10]) + more)


QUERY_KINDS = (
    "allergy",
    "pet",
    "home_now",
    "job_now",
    "contact_home",
    "contact_job",
    "homes",
    "employers",
    "procedure",
    "event",
)
QUERY_TYPES = ("single_fact", "updated_fact", "multi_hop", "multi_source", "procedure", "temporal_event")


def generate(
    seed: int = 7,
    people: int = 12,
    ladder: Sequence[int] = (1_000, 10_000),
    queries_per_person: int = len(QUERY_KINDS),
) -> Dataset:
    """A synthetic benchmark, the same for the same arguments. Its documents are the people's memories (every
    gold and hard negative among them) followed by crowd distractors up to the largest rung, so each rung is a
    prefix holding all the evidence; a smaller ladder gives a prefix of a larger one's documents. Each person
    gets `queries_per_person` of the `QUERY_KINDS` (rotated so that every kind is asked across people).

    Raises ValueError when the people's memories do not fit in the smallest rung, and `CollisionError` should a
    generated document answer a query it is not gold for."""
    sizes = sorted(set(ladder))
    if not sizes or sizes[0] <= 0:
        raise ValueError(f"ladder must hold positive corpus sizes, got {list(ladder)}")
    if people < 1:
        raise ValueError(f"people must be at least 1, got {people}")
    if not 1 <= queries_per_person <= len(QUERY_KINDS):
        raise ValueError(f"queries_per_person must be between 1 and {len(QUERY_KINDS)}, got {queries_per_person}")
    rng = random.Random(seed)
    names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    if 3 * people > len(names):
        raise ValueError(f"at most {len(names) // 3} people have distinct names, got {people}")
    rng.shuffle(names)
    reserved = frozenset(names[: 3 * people])  # people and their contacts; the crowd never borrows these names

    persons = [_draw_person(rng, i, names[3 * i], (names[3 * i + 1], names[3 * i + 2])) for i in range(people)]
    core: list[SyntheticDocument] = []
    ids_by_person: list[dict[str, str]] = []
    for person in persons:
        labelled = sorted(_person_documents(rng, person).items(), key=lambda item: item[1].occurred_at or TODAY)
        ids: dict[str, str] = {}
        for label, doc in labelled:
            ids[label] = _doc_id(len(core), sizes[-1])
            core.append(replace(doc, id=ids[label]))
        ids_by_person.append(ids)
    if len(core) > sizes[0]:
        raise ValueError(f"{people} people make {len(core)} core documents; the smallest rung holds {sizes[0]}")

    queries: list[Query] = []
    for person, ids in zip(persons, ids_by_person, strict=True):
        questions = _person_questions(person)
        for j in range(queries_per_person):
            kind = QUERY_KINDS[(person.index + j) % len(QUERY_KINDS)]
            question = questions[kind]
            gold = tuple(ids[label] for label in question.gold)
            queries.append(
                SyntheticQuery(
                    id=f"{person.user_id}-{kind}",
                    text=question.text,
                    gold=gold,
                    type=question.type,
                    answer=question.answer,
                    user_id=person.user_id,
                    hard_negatives=_near_misses(question.needs, gold, person.user_id, core),
                    needs=question.needs,
                )
            )

    ids_from = (_doc_id(n, sizes[-1]) for n in count(len(core)))
    documents: list[Document] = list(core)
    documents.extend(islice(_crowd(rng, ids_from, reserved), sizes[-1] - len(core)))
    dataset = Dataset(
        name=f"synthetic-seed{seed}-people{people}",
        documents=documents,
        queries=queries,
        ladder=sizes,
        now=_at(TODAY, minutes=0),  # midnight UTC: "now" questions ask what holds on TODAY
    )
    verify(dataset)
    return dataset


def load_synthetic(spec: str | None) -> Dataset:
    """The dataset `--format synthetic --data SPEC` names. SPEC is empty or comma-separated `key=value` pairs:
    `seed` (int, default 7), `people` (int, default 12), `ladder` (corpus sizes separated by `/`, each an int
    with an optional k or m suffix, default 1000/10000), `queries` (queries per person, default all kinds).
    Example: `seed=3,people=20,ladder=1k/10k/100k/1m`."""
    options: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in {"seed", "people", "ladder", "queries"}:
            raise ValueError(f"synthetic spec item {item!r}: expected seed=, people=, ladder= or queries=")
        options[key] = value.strip()
    try:
        return generate(
            seed=int(options.get("seed", 7)),
            people=int(options.get("people", 12)),
            ladder=[_size(n) for n in options.get("ladder", "1000/10000").split("/")],
            queries_per_person=int(options.get("queries", len(QUERY_KINDS))),
        )
    except CollisionError:
        raise
    except ValueError as error:
        raise ValueError(f"synthetic spec {spec!r}: {error}") from error


def _size(text: str) -> int:
    text = text.strip().lower()
    multiplier = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if multiplier > 1 else text) * multiplier


def _doc_id(n: int, total: int) -> str:
    return f"syn-{n:0{max(6, len(str(total - 1)))}d}"


# ---- the people: what is true of each, their memories, the questions about them


@dataclass(frozen=True)
class _Person:
    index: int
    user_id: str
    name: str
    contacts: tuple[str, str]
    relations: tuple[str, str]
    homes: tuple[tuple[str, date], ...]  # (city, moved in), oldest first; the last is current
    jobs: tuple[tuple[str, str, date], ...]  # (company, role, hired), oldest first; the last is current
    contact_homes: tuple[str, str]
    contact_jobs: tuple[tuple[str, str], tuple[str, str]]
    allergen: str
    contact_allergen: str  # the first contact's
    pet_kind: str
    pet: str
    contact_pet: str  # the second contact's, of the same kind
    events: tuple[tuple[date, str, tuple[str, ...]], ...]  # (day, what, cities named), distinct months
    asked_event: int
    procedures: tuple[Procedure, Procedure]  # the second is asked about; the next person has it first
    sessions: tuple[datetime, ...]


class _Question(NamedTuple):
    type: str
    text: str
    answer: str
    gold: tuple[str, ...]  # document labels
    needs: tuple[Need, ...]


def _draw_person(rng: random.Random, index: int, name: str, contacts: tuple[str, str]) -> _Person:
    cities = rng.sample(CITIES, 3)
    homes = ((cities[0], _day(rng, 2014, 2016)), (cities[1], _day(rng, 2018, 2020)), (cities[2], _day(rng, 2022, 2024)))
    companies, roles = rng.sample(COMPANIES, 2), rng.sample(ROLES, 2)
    jobs = ((companies[0], roles[0], _day(rng, 2015, 2018)), (companies[1], roles[1], _day(rng, 2021, 2024)))
    sessions = tuple(_at(_day(rng, 2023, 2024), rng.randint(8 * 60, 20 * 60)) for _ in range(4))
    # A contact shares the person's current city or employer half the time: a same-value near miss.
    contact_homes = [cities[2] if rng.random() < 0.5 else _other(rng, CITIES, cities) for _ in range(2)]
    contact_jobs = [
        (companies[1] if rng.random() < 0.5 else _other(rng, COMPANIES, companies), rng.choice(ROLES)) for _ in range(2)
    ]
    allergen, contact_allergen = _two(rng, ALLERGENS)
    pet, contact_pet = _two(rng, PET_NAMES)
    # Events fall in months when nothing else happened to the person (a move, a new job, a chat with the
    # assistant), so "what did they do that month" has one answer.
    busy = {(d.year, d.month) for d in (homes[1][1], homes[2][1], jobs[1][2], *sessions)}
    free = [(year, month) for year in range(2021, 2025) for month in range(1, 13) if (year, month) not in busy]
    events = []
    city_of_now: str | None = cities[2]  # the first event naming a city takes place where the person lives now
    for (year, month), template in zip(sorted(rng.sample(free, 4)), rng.sample(EVENTS, 4), strict=True):
        city = rng.choice(CITIES)
        if "{city}" in template and city_of_now is not None:
            city, city_of_now = city_of_now, None
        events.append((date(year, month, rng.randint(1, 28)), _fill(rng, template, city), _cities(template, city)))
    return _Person(
        index=index,
        user_id=f"person-{index + 1:02d}",
        name=name,
        contacts=contacts,
        relations=_two(rng, RELATIONS),
        homes=homes,
        jobs=jobs,
        contact_homes=(contact_homes[0], contact_homes[1]),
        contact_jobs=(contact_jobs[0], contact_jobs[1]),
        allergen=allergen,
        contact_allergen=contact_allergen,
        pet_kind=rng.choice(PET_KINDS),
        pet=pet,
        contact_pet=contact_pet,
        events=tuple(events),
        asked_event=index % len(events),
        procedures=(PROCEDURES[index % len(PROCEDURES)], PROCEDURES[(index + 1) % len(PROCEDURES)]),
        sessions=tuple(sorted(sessions)),
    )


def _person_documents(rng: random.Random, p: _Person) -> dict[str, SyntheticDocument]:
    """The person's memories by label (ids are given once they are in order). Contacts' facts are in the
    person's scope too: they are what makes near misses there. Only the relation documents say how a contact
    is related, so that a multi-hop question has exactly one first hop."""
    n, (c1, c2) = p.name, p.contacts
    docs: dict[str, SyntheticDocument] = {}
    for i, (city, since) in enumerate(p.homes):
        until = p.homes[i + 1][1] if i + 1 < len(p.homes) else date.max
        docs[f"home{i}"] = _lives("", p.user_id, n, city, since, since, until, moved=i > 0)
    for i, (company, role, since) in enumerate(p.jobs):
        until = p.jobs[i + 1][2] if i + 1 < len(p.jobs) else date.max
        docs[f"job{i}"] = _works("", p.user_id, n, company, role, since, since, until, started=i > 0)
    for i, (contact, relation) in enumerate(zip(p.contacts, p.relations, strict=True)):
        noted = _day(rng, 2020, 2022)
        docs[f"relation{i}"] = _relation("", p.user_id, n, relation, contact, noted)
        home, (company, role) = p.contact_homes[i], p.contact_jobs[i]
        docs[f"contact_home{i}"] = _lives("", p.user_id, contact, home, noted, date.min, date.max, moved=False)
        docs[f"contact_job{i}"] = _works("", p.user_id, contact, company, role, noted, date.min, date.max, False)
    for i, (day, what, cities) in enumerate(p.events):
        docs[f"event{i}"] = _event("", p.user_id, n, day, what, cities)
    # The same thing, done by a contact in the month the question asks about.
    day, what, cities = p.events[p.asked_event]
    docs["contact_event"] = _event("", p.user_id, c1, day.replace(day=day.day % 28 + 1), what, cities)
    for i, procedure in enumerate(p.procedures):
        docs[f"procedure{i}"] = _procedure("", p.user_id, n, procedure, p.contacts[i], _day(rng, 2021, 2024))

    user, bot = n, "assistant"
    allergy = (Fact(n, "allergy", p.allergen),)
    contact_allergy = (Fact(c1, "allergy", p.contact_allergen),)
    pet = (Fact(n, "pet", p.pet, mentions=(p.pet_kind,)),)
    contact_pet = (Fact(c2, "pet", p.contact_pet, mentions=(p.pet_kind,)),)
    sessions: list[list[tuple[str, str, tuple[Fact, ...], str | None]]] = [
        [
            (user, "Can you help me plan meals for next week?", (), None),
            (bot, "Of course. Is there anything you can't eat?", (), None),
            (user, f"Yes, I'm allergic to {p.allergen}, so please leave it out.", allergy, "allergy"),
            (bot, "Understood, I'll plan around that.", (), None),
        ],
        [
            (user, rng.choice(USER_FILLERS), (), None),
            (bot, rng.choice(ASSISTANT_FILLERS), (), None),
            (
                user,
                f"{c1} is coming for dinner on Saturday and is allergic to {p.contact_allergen}.",
                contact_allergy,
                "contact_allergy",
            ),
            (bot, "Thanks, I'll suggest a menu that works for both of you.", (), None),
        ],
        [
            (user, f"Please remind me to book a vet appointment for my {p.pet_kind} {p.pet}.", pet, "pet"),
            (bot, "Sure, which day suits you?", (), None),
            (user, f"Any {rng.choice(WEEKDAYS)} afternoon works.", (), None),
            (bot, "Done, I've set the reminder.", (), None),
        ],
        [
            (user, rng.choice(USER_FILLERS), (), None),
            (bot, rng.choice(ASSISTANT_FILLERS), (), None),
            (user, f"{c2} just adopted a {p.pet_kind} called {p.contact_pet}.", contact_pet, "contact_pet"),
            (bot, "How lovely, congratulations to them!", (), None),
        ],
    ]
    for s, (start, turns) in enumerate(zip(p.sessions, sessions, strict=True), start=1):
        for t, (speaker, text, facts, label) in enumerate(turns):
            at = start + timedelta(minutes=2 * t)
            docs[label or f"session{s}-turn{t}"] = _turn(
                "", p.user_id, f"{p.user_id}-session-{s}", speaker, text, at, facts
            )
    return docs


def _person_questions(p: _Person) -> dict[str, _Question]:
    n, (c1, c2), (r1, r2) = p.name, p.contacts, p.relations
    now = (TODAY, _TOMORROW)
    day, what, _ = p.events[p.asked_event]
    month_start = day.replace(day=1)
    month_end = (month_start + timedelta(days=31)).replace(day=1)
    procedure = p.procedures[1]
    return {
        "allergy": _Question(
            "single_fact", f"What is {n} allergic to?", p.allergen, ("allergy",), (Need(n, "allergy"),)
        ),
        "pet": _Question("single_fact", f"What is the name of {n}'s {p.pet_kind}?", p.pet, ("pet",), (Need(n, "pet"),)),
        "home_now": _Question(
            "updated_fact",
            f"Which city does {n} live in now?",
            p.homes[-1][0],
            ("home2",),
            (Need(n, "lives_in", *now),),
        ),
        "job_now": _Question(
            "updated_fact", f"Where does {n} work now?", p.jobs[-1][0], ("job1",), (Need(n, "works_at", *now),)
        ),
        "contact_home": _Question(
            "multi_hop",
            f"In which city does {n}'s {r1} live?",
            p.contact_homes[0],
            ("relation0", "contact_home0"),
            (Need(n, f"relation:{r1}"), Need(c1, "lives_in", *now)),
        ),
        "contact_job": _Question(
            "multi_hop",
            f"Where does {n}'s {r2} work?",
            p.contact_jobs[1][0],
            ("relation1", "contact_job1"),
            (Need(n, f"relation:{r2}"), Need(c2, "works_at", *now)),
        ),
        "homes": _Question(
            "multi_source",
            f"Which cities has {n} lived in?",
            _listing([city for city, _ in p.homes]),
            ("home0", "home1", "home2"),
            (Need(n, "lives_in"),),
        ),
        "employers": _Question(
            "multi_source",
            f"Which companies has {n} worked for?",
            _listing([company for company, _, _ in p.jobs]),
            ("job0", "job1"),
            (Need(n, "works_at"),),
        ),
        "procedure": _Question(
            "procedure",
            f"How does {n} {procedure.phrase}?",
            "; ".join(step.format(contact=p.contacts[1]) for step in procedure.steps),
            ("procedure1",),
            (Need(n, f"procedure:{procedure.key}"),),
        ),
        "event": _Question(
            "temporal_event",
            f"What did {n} do in {_month(day)}?",
            what,
            (f"event{p.asked_event}",),
            (Need(n, "event", month_start, month_end),),
        ),
    }


def _near_misses(
    needs: tuple[Need, ...], gold: tuple[str, ...], scope: str, core: list[SyntheticDocument]
) -> tuple[str, ...]:
    """The core documents closest to the query without being gold: up to four in its scope (what a per-user
    search competes with) and two elsewhere (what a global search adds). Closeness counts what a document shares
    with the query: subject, attribute (or its family), validity overlapping the asked time, an entity of the
    gold (a value, a named city or contact), the scope. Whether any of them answers is `verify`'s to check."""
    gold_ids = set(gold)
    entities = {e for d in core if d.id in gold_ids for f in d.facts for e in (f.value, *f.mentions)}
    here: list[tuple[int, int, str]] = []
    elsewhere: list[tuple[int, int, str]] = []
    for position, doc in enumerate(core):
        if not doc.facts or doc.id in gold_ids:
            continue
        score = max(_closeness(need, fact) for need in needs for fact in doc.facts)
        named = {e for f in doc.facts for e in (f.subject, f.value, *f.mentions)}
        score += 2 if entities & named else 0
        same_scope = doc.user_id == scope
        score += same_scope
        if score >= 4:
            (here if same_scope else elsewhere).append((-score, position, doc.id))
    return tuple(doc_id for _, _, doc_id in sorted(here)[:4] + sorted(elsewhere)[:2])


def _closeness(need: Need, fact: Fact) -> int:
    same_family = fact.attribute.partition(":")[0] == need.attribute.partition(":")[0]
    return (
        2 * (fact.subject == need.subject)
        + (3 if fact.attribute == need.attribute else 1 if same_family else 0)
        + (fact.start < need.end and need.start < fact.end)
    )


# ---- the crowd: distractors in the people's wording, about other (never the people's) names


def _crowd(rng: random.Random, ids: Iterator[str], reserved: frozenset[str]) -> Iterator[SyntheticDocument]:
    for k in count(1):
        yield from _crowd_member(rng, ids, f"crowd-{k:06d}", reserved)


def _crowd_member(
    rng: random.Random, ids: Iterator[str], user_id: str, reserved: frozenset[str]
) -> list[SyntheticDocument]:
    """About a dozen memories of one crowd member, drawn from the same templates as the people's."""
    name, contact = _crowd_name(rng, reserved), _crowd_name(rng, reserved)
    first_city, second_city = _two(rng, CITIES)
    settled = _day(rng, 2010, 2019)
    moved = _day(rng, 2020, 2024) if rng.random() < 0.5 else None
    hired, noted = _day(rng, 2012, 2024), _day(rng, 2018, 2024)
    docs = [_lives(next(ids), user_id, name, first_city, settled, settled, moved or date.max, moved=False)]
    if moved is not None:
        docs.append(_lives(next(ids), user_id, name, second_city, moved, moved, date.max, moved=True))
    docs.append(
        _works(next(ids), user_id, name, rng.choice(COMPANIES), rng.choice(ROLES), hired, hired, date.max, False)
    )
    docs.append(_relation(next(ids), user_id, name, rng.choice(RELATIONS), contact, noted))
    docs.append(_lives(next(ids), user_id, contact, rng.choice(CITIES), noted, date.min, date.max, moved=False))

    session, at = f"{user_id}-session-1", _at(_day(rng, 2023, 2024), rng.randint(8 * 60, 20 * 60))
    allergen, kind, pet = rng.choice(ALLERGENS), rng.choice(PET_KINDS), rng.choice(PET_NAMES)
    turns = (
        (name, rng.choice(USER_FILLERS), ()),
        ("assistant", rng.choice(ASSISTANT_FILLERS), ()),
        (name, f"By the way, I'm allergic to {allergen}.", (Fact(name, "allergy", allergen),)),
        ("assistant", "Thanks, I'll remember that.", ()),
        (name, f"My {kind} {pet} has been sleeping all day.", (Fact(name, "pet", pet, mentions=(kind,)),)),
    )
    for t, (speaker, text, facts) in enumerate(turns):
        docs.append(_turn(next(ids), user_id, session, speaker, text, at + timedelta(minutes=2 * t), facts))

    for month in rng.sample(range(60), rng.randint(1, 3)):  # 2020-2024
        day = date(2020 + month // 12, month % 12 + 1, rng.randint(1, 28))
        template, city = rng.choice(EVENTS), rng.choice(CITIES)
        docs.append(_event(next(ids), user_id, name, day, _fill(rng, template, city), _cities(template, city)))
    if rng.random() < 0.5:
        docs.append(_procedure(next(ids), user_id, name, rng.choice(PROCEDURES), contact, noted))
    if rng.random() < 0.5:
        note = rng.choice(NOTES).format(
            city=rng.choice(CITIES),
            weekday=rng.choice(WEEKDAYS),
            cuisine=rng.choice(CUISINES),
            topic=rng.choice(TOPICS),
        )
        docs.append(
            SyntheticDocument(id=next(ids), text=note, type="semantic", user_id=user_id, occurred_at=_at(noted))
        )
    return docs


def _crowd_name(rng: random.Random, reserved: frozenset[str]) -> str:
    while (name := f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}") in reserved:
        pass
    return name


# ---- documents, one template each


def _lives(
    doc_id: str, user_id: str, name: str, city: str, noted: date, since: date, until: date, moved: bool
) -> SyntheticDocument:
    facts: tuple[Fact, ...] = (Fact(name, "lives_in", city, since, until),)
    if moved:  # a move is also something the person did that month
        facts += (_did(name, f"moved to {city}", noted),)
    text = f"In {_month(noted)}, {name} moved to {city}." if moved else f"{name} lives in {city}."
    return SyntheticDocument(
        id=doc_id,
        text=text,
        type="semantic",
        user_id=user_id,
        occurred_at=_at(noted),
        metadata={"valid_from": since.isoformat()} if since != date.min else {},
        facts=facts,
    )


def _works(
    doc_id: str, user_id: str, name: str, company: str, role: str, noted: date, since: date, until: date, started: bool
) -> SyntheticDocument:
    facts: tuple[Fact, ...] = (Fact(name, "works_at", company, since, until, mentions=(role,)),)
    if started:
        text = f"In {_month(noted)}, {name} started a new job at {company} as {_a(role)}."
        facts += (_did(name, f"started a new job at {company}", noted),)
    else:
        text = f"{name} works at {company} as {_a(role)}."
    return SyntheticDocument(
        id=doc_id,
        text=text,
        type="semantic",
        user_id=user_id,
        occurred_at=_at(noted),
        metadata={"valid_from": since.isoformat()} if since != date.min else {},
        facts=facts,
    )


def _relation(doc_id: str, user_id: str, name: str, relation: str, contact: str, noted: date) -> SyntheticDocument:
    return SyntheticDocument(
        id=doc_id,
        text=f"{contact} is {name}'s {relation}.",
        type="semantic",
        user_id=user_id,
        occurred_at=_at(noted),
        facts=(Fact(name, f"relation:{relation}", contact),),
    )


def _event(doc_id: str, user_id: str, name: str, day: date, what: str, cities: tuple[str, ...]) -> SyntheticDocument:
    return SyntheticDocument(
        id=doc_id,
        text=f"On {day.day} {_month(day)}, {name} {what}.",
        type="episodic",
        user_id=user_id,
        occurred_at=_at(day, 18 * 60),
        facts=(_did(name, what, day, cities),),
    )


def _did(name: str, what: str, day: date, cities: tuple[str, ...] = ()) -> Fact:
    return Fact(name, "event", what, day, day + timedelta(days=1), mentions=cities)


def _procedure(
    doc_id: str, user_id: str, name: str, procedure: Procedure, contact: str, noted: date
) -> SyntheticDocument:
    steps = tuple(step.format(contact=contact) for step in procedure.steps)
    return SyntheticDocument(
        id=doc_id,
        text=f"{name}'s way to {procedure.phrase}: {'; '.join(steps)}.",
        type="procedural",
        user_id=user_id,
        occurred_at=_at(noted),
        title=f"{procedure.title} ({name})",
        steps=steps,
        trigger=procedure.trigger,
        facts=(Fact(name, f"procedure:{procedure.key}", procedure.title, mentions=(contact,)),),
    )


def _turn(
    doc_id: str, user_id: str, session_id: str, speaker: str, text: str, at: datetime, facts: tuple[Fact, ...]
) -> SyntheticDocument:
    return SyntheticDocument(
        id=doc_id,
        text=text,
        type="dialogue",
        user_id=user_id,
        session_id=session_id,
        speaker=speaker,
        occurred_at=at,
        facts=facts,
    )


# ---- small helpers


def _day(rng: random.Random, first_year: int, last_year: int) -> date:
    first = date(first_year, 1, 1)
    return first + timedelta(days=rng.randrange((date(last_year + 1, 1, 1) - first).days))


def _at(day: date, minutes: int = 9 * 60) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minutes)


def _month(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.year}"


def _two(rng: random.Random, pool: Sequence[str]) -> tuple[str, str]:
    first, second = rng.sample(pool, 2)
    return first, second


def _other(rng: random.Random, pool: Sequence[str], taken: Sequence[str]) -> str:
    return rng.choice([item for item in pool if item not in taken])


def _fill(rng: random.Random, template: str, city: str) -> str:
    return template.format(city=city, topic=rng.choice(TOPICS), cuisine=rng.choice(CUISINES), cause=rng.choice(CAUSES))


def _cities(template: str, city: str) -> tuple[str, ...]:
    return (city,) if "{city}" in template else ()


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
