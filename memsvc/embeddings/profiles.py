"""Storage profiles: how a tenant's embeddings are stored and searched.

A profile is a stored codec (what each memory keeps), an optional PCA reduction fitted on the tenant's own
embeddings, and the oversampling of its two-stage search. Float codecs are searched directly by an HNSW index on
the stored vectors. Compact codecs (float8, int8, binary) store a byte code whose first bytes are the vector's
sign bits; a Hamming HNSW index over those bits yields `oversample × top_k` candidates, which are rescored
exactly from the stored codes. The binary index therefore costs no stored bytes beyond the code itself.

Names: `[pca<percent>-]<codec>[-x<oversample>]`, e.g. `float16`, `fp8`, `pca50-fp8`, `int8-x16`."""

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

from memsvc.embeddings.codecs import CodecName, code_size

IndexKind = Literal["float32", "float16", "binary"]

# Short names people type; the stored and reported name is the canonical one.
CODEC_ALIASES: dict[str, CodecName] = {
    "float32": "float32",
    "vector": "float32",
    "float16": "float16",
    "halfvec": "float16",
    "fp8": "fp8-e4m3",
    "fp8-e4m3": "fp8-e4m3",
    "fp8-e5m2": "fp8-e5m2",
    "int8": "int8",
    "binary": "binary",
    "bit": "binary",
}
RESCORED_CODECS: tuple[CodecName, ...] = ("fp8-e4m3", "fp8-e5m2", "int8")
DEFAULT_OVERSAMPLE = 16
MAX_OVERSAMPLE = 64

_NAME = re.compile(r"^(?:pca(?P<pca>\d{1,2})-)?(?P<codec>[a-z0-9-]+?)(?:-x(?P<oversample>\d{1,3}))?$")


class InvalidProfile(ValueError):
    """A profile name that does not parse or names an impossible combination."""


@dataclass(frozen=True)
class StorageProfile:
    codec: CodecName
    pca_percent: int | None = None
    oversample: int = 1

    @property
    def storage(self) -> str:
        """What is stored (codec and reduction, not the search-time oversampling): vectors of two profiles with
        the same storage are interchangeable, so it keys the embedding space."""
        return f"pca{self.pca_percent}-{self.codec}" if self.pca_percent else self.codec

    @property
    def name(self) -> str:
        return f"{self.storage}-x{self.oversample}" if self.rescored else self.storage

    @property
    def rescored(self) -> bool:
        """Candidates from the binary index are rescored from the stored codes."""
        return self.codec in RESCORED_CODECS

    @property
    def index_kind(self) -> IndexKind:
        if self.codec in ("float32", "float16"):
            return self.codec
        return "binary"

    @property
    def needs_fit(self) -> bool:
        """Encoding needs parameters learned from a sample of the tenant's embeddings (PCA basis, int8 scales)."""
        return self.pca_percent is not None or self.codec == "int8"

    def index_dim(self, dim: int) -> int:
        """Dimensions stored and indexed for a model of `dim` dimensions."""
        return max(1, round(dim * self.pca_percent / 100)) if self.pca_percent else dim

    def bytes_per_memory(self, dim: int) -> int:
        """Embedding bytes stored per memory (the codec's payload, without row or index overhead)."""
        return code_size(self.codec, self.index_dim(dim))

    def candidates(self, top_k: int) -> int:
        return top_k * self.oversample


def parse_profile(name: str) -> StorageProfile:
    """The profile a name describes; InvalidProfile says what is wrong with it."""
    match = _NAME.match(name.strip().lower())
    codec = CODEC_ALIASES.get(match.group("codec")) if match else None
    if match is None or codec is None:
        known = ", ".join(sorted(CODEC_ALIASES))
        raise InvalidProfile(
            f"unknown storage profile {name!r}: expected [pca<percent>-]<codec>[-x<oversample>], codec one of {known}"
        )
    pca = int(match.group("pca")) if match.group("pca") else None
    if pca is not None and not 1 <= pca <= 99:
        raise InvalidProfile(f"storage profile {name!r}: PCA must keep between 1 and 99 percent of the dimensions")
    oversample_text = match.group("oversample")
    if codec not in RESCORED_CODECS:
        if oversample_text is not None:
            raise InvalidProfile(f"storage profile {name!r}: {codec} is searched directly; it takes no oversampling")
        return StorageProfile(codec, pca)
    oversample = int(oversample_text) if oversample_text else DEFAULT_OVERSAMPLE
    if not 1 <= oversample <= MAX_OVERSAMPLE:
        raise InvalidProfile(f"storage profile {name!r}: oversampling must be between 1 and {MAX_OVERSAMPLE}")
    return StorageProfile(codec, pca, oversample)


def catalog() -> list[StorageProfile]:
    """The profiles offered by name (any other valid name works too)."""
    codecs: tuple[CodecName, ...] = get_args(CodecName)
    plain = [parse_profile(codec) for codec in codecs]
    reduced = [parse_profile(f"pca50-{codec}") for codec in codecs if codec != "float32"]
    return plain + reduced


def compression(profile: StorageProfile, dim: int) -> float:
    """How many times smaller than float32 the embedding payload is."""
    return 4 * dim / profile.bytes_per_memory(dim) if dim else math.nan
