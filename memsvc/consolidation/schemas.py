import uuid
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memsvc.memories.schemas import ScopeId


class ConsolidateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"user_id": "alice"}, {"session_id": "s-42", "backend": "extractive"}]},
    )

    user_id: ScopeId | None = Field(default=None, description="Consolidate this user's history.")
    agent_id: ScopeId | None = Field(default=None, description="Consolidate this agent's history.")
    session_id: ScopeId | None = Field(default=None, description="Consolidate this session's history.")
    backend: str | None = Field(
        default=None,
        max_length=64,
        description="Who writes the summaries and facts: extractive (no language model). Default: the "
        "deployment's MEMSVC_CONSOLIDATION_BACKEND.",
    )

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        if not (self.user_id or self.agent_id or self.session_id):
            raise ValueError("at least one of user_id, agent_id, session_id is required")
        return self


class ConsolidateAccepted(BaseModel):
    job_id: uuid.UUID = Field(description="The consolidation job: GET /v1/jobs/{job_id} shows progress and result.")
    backend: str = Field(description="The backend the job runs with.")
