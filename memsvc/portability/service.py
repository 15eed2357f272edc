"""Export a tenant's memories as NDJSON and import them back losslessly (ids, history, links, embeddings)."""

import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from memsvc.core.db import tenant_session
from memsvc.core.errors import Unprocessable
from memsvc.embeddings import repository as embeddings
from memsvc.embeddings.encoding import FitNeeded, SpaceEncoding
from memsvc.embeddings.service import NoEmbeddingSpace, encoding_of, live_spaces
from memsvc.jobs import repository as jobs
from memsvc.memories import repository
from memsvc.memories.repository import MemoryFilter
from memsvc.memories.schemas import MemoryCreate, MemoryPublic
from memsvc.memories.service import histories, memory_hash
from memsvc.models import EmbeddingSpace
from memsvc.portability.schemas import ExportedLink, ExportRecord, ImportReport
from memsvc.search.entities import memory_entities

EXPORT_PAGE = 500
# One import is one transaction: beyond this many records it would hold its locks (and risk the statement timeout)
# for too long. Larger exports are imported in parts; records already stored are skipped, so parts may overlap.
MAX_IMPORT_RECORDS = 10_000


def export_lines(factory: sessionmaker[Session], where: MemoryFilter) -> Iterator[str]:
    """NDJSON lines, oldest memory first; reads page by page in its own tenant-scoped session."""
    after: int | None = None
    while True:
        with tenant_session(factory, where.tenant_id) as db:
            page = repository.page(db, where, after_seq=after, limit=EXPORT_PAGE, ascending=True)
            if not page:
                return
            ids = [m.id for m in page]
            links: dict[uuid.UUID, list[ExportedLink]] = {}
            for source, derived, relation in repository.links_of(db, where.tenant_id, ids):
                links.setdefault(derived, []).append(ExportedLink(source_id=source, relation=relation))
            versions = histories(db, where.tenant_id, page)
            vectors = _model_vectors_of(db, where.tenant_id, ids)
            space_id = embeddings.tenant_spaces(db, where.tenant_id)[0]
            space = embeddings.get_space(db, space_id) if space_id is not None else None
            for memory in page:
                vector = vectors.get(memory.id)
                record = ExportRecord.model_validate(
                    {
                        **MemoryPublic.model_validate(memory).model_dump(),
                        "source_ids": [
                            link.source_id for link in links.get(memory.id, []) if link.relation == "evidence"
                        ],
                        "content_hash": memory.content_hash,
                        "embedding_model": space.model_id if space and vector is not None else None,
                        "embedding": vector,
                        "links": links.get(memory.id, []),
                        "versions": versions[memory.id],
                    }
                )
                yield record.model_dump_json() + "\n"
            after = page[-1].seq


def _model_vectors_of(db: Session, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[float]]:
    """The stored vectors of these memories in the tenant's search space, as the model's coordinates; none where
    the storage does not keep them (PCA-reduced or binary): those are re-embedded on import."""
    space_id = embeddings.tenant_spaces(db, tenant_id)[0]
    space = embeddings.get_space(db, space_id) if space_id is not None else None
    if space is None:
        return {}
    try:
        encoding = encoding_of(db, tenant_id, space)
    except FitNeeded:
        return {}
    stored = embeddings.stored_values(db, tenant_id, space.id, encoding.column, ids)
    found = list(stored)
    decoded = encoding.model_vectors([stored[i] for i in found]) if found else None
    if decoded is None:
        return {}
    return {memory_id: [float(v) for v in vector] for memory_id, vector in zip(found, decoded, strict=True)}


def _import_encoding(db: Session, tenant_id: uuid.UUID, space: EmbeddingSpace | None) -> SpaceEncoding | None:
    """How imported vectors are stored; None (everything is embedded again) before the space has its fit."""
    try:
        return encoding_of(db, tenant_id, space) if space is not None else None
    except FitNeeded:
        return None


def import_space(db: Session, tenant_id: uuid.UUID) -> EmbeddingSpace | None:
    """The space imported vectors are stored in: the tenant's search space, its row share-locked so a model
    change cannot complete mid-import (None before any model is registered: everything is re-embedded)."""
    try:
        return live_spaces(db, tenant_id)[0]
    except NoEmbeddingSpace:
        return None


def parse_lines(body: bytes, space: EmbeddingSpace | None) -> list[ExportRecord]:
    """Validate every line as a fresh write would be; an embedding said to come from `space`'s model must have
    its dimension."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unprocessable("The import body is not UTF-8 text.") from exc
    records: list[ExportRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(records) == MAX_IMPORT_RECORDS:
            raise Unprocessable(
                f"line {number}: an import holds at most {MAX_IMPORT_RECORDS} records; import the rest in a "
                "further request."
            )
        try:
            record = ExportRecord.model_validate_json(line)
            # The same rules as a fresh write: scope present, content non-empty and within the size limit.
            MemoryCreate(
                type=record.type,
                content=record.content,
                user_id=record.user_id,
                agent_id=record.agent_id,
                session_id=record.session_id,
                steps=record.steps,
                metadata=record.metadata,
                valid_from=record.valid_from,
                valid_to=record.valid_to,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise Unprocessable(f"line {number}: {where + ': ' if where else ''}{first.get('msg')}") from exc
        if record.embedding is not None and not all(math.isfinite(v) for v in record.embedding):
            raise Unprocessable(f"line {number}: embedding has NaN or infinite values")
        if (
            space is not None
            and record.embedding is not None
            and record.embedding_model in (None, space.model_id)
            and len(record.embedding) != space.dim
        ):
            raise Unprocessable(f"line {number}: embedding must have {space.dim} values ({space.model_id})")
        records.append(record)
    if not records:
        raise Unprocessable("The import body holds no NDJSON records.")
    return records


def import_records(
    db: Session, tenant_id: uuid.UUID, records: list[ExportRecord], space: EmbeddingSpace | None
) -> ImportReport:
    """Restore exported memories with their ids; ones already stored (same id or same content) are skipped.
    Records without an embedding from `space`'s model are stored pending under the report's job (enqueue it
    after commit)."""
    job = jobs.add(db, tenant_id, kind="embed")
    encoding = _import_encoding(db, tenant_id, space)
    stale = {
        r.id
        for r in records
        if space is None or encoding is None or r.embedding is None or r.embedding_model != space.model_id
    }
    rows = [_row(tenant_id, r, job.id if r.id in stale else None) for r in records]
    inserted = repository.insert_preserving_ids(db, rows)
    jobs.queue_for_embedding(db, tenant_id, [r.id for r in records if r.id in inserted and r.id in stale])
    kept = [r for r in records if r.id in inserted and r.id not in stale]
    if space is not None and encoding is not None and kept:
        vectors = np.asarray([r.embedding for r in kept], dtype=np.float32)
        values = encoding.encode(vectors)
        embeddings.store_vectors(db, tenant_id, space.id, [r.id for r in kept], encoding.column, values)

    linkable = inserted | repository.existing_ids(db, tenant_id, {link.source_id for r in records for link in r.links})
    links = [
        (link.source_id, r.id, link.relation)
        for r in records
        if r.id in inserted
        for link in r.links
        if link.source_id in linkable
    ]
    link_count = repository.add_links(db, tenant_id, links)
    restored = [(r, v) for r in records if r.id in inserted for v in r.versions]
    # The versions a record's memory replaced; its own is the memory itself (see memories.service.histories).
    repository.add_versions(
        db,
        tenant_id,
        [
            {
                "memory_id": r.id,
                "version": v.version,
                "change": v.change,
                "changed_at": v.changed_at,
                "snapshot": v.memory,
            }
            for r, v in restored
            if v.version < r.version
        ],
    )
    return ImportReport(
        imported=len(inserted),
        skipped=len(records) - len(inserted),
        links=link_count,
        versions=len(restored),
        reembedded=len(stale & inserted),
        job_id=job.id,
    )


def _row(tenant_id: uuid.UUID, r: ExportRecord, embed_job_id: uuid.UUID | None) -> dict[str, Any]:
    digest = r.content_hash or memory_hash(r)
    return {
        "id": r.id,
        "tenant_id": tenant_id,
        "user_id": r.user_id,
        "agent_id": r.agent_id,
        "session_id": r.session_id,
        "type": r.type.value,
        "content": r.content,
        "metadata_": r.metadata,
        "occurred_at": r.occurred_at,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "valid_from": r.valid_from,
        "valid_to": r.valid_to,
        "version": r.version,
        "content_hash": digest,
        "role": r.role.value if r.role else None,
        "speaker": r.speaker,
        "turn_index": r.turn_index,
        "title": r.title,
        "steps": r.steps,
        "trigger": r.trigger,
        "entities": memory_entities(r.content, r.speaker, r.title),
        "job_id": embed_job_id,
        "consolidation_level": r.consolidation_level,
    }
