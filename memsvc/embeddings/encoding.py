"""How one embedding space turns model vectors into stored values and back (pure: no SQL).

A space's storage is a profile's codec and reduction; a tenant's fitted parameters (PCA basis, int8 scales)
complete it. Queries are reduced the same way as stored vectors but never quantized: rescoring compares the
exact query with the decoded codes (asymmetric distance), which loses less than quantizing both sides."""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from memsvc.embeddings import codecs
from memsvc.embeddings.profiles import StorageProfile, parse_profile

Column = Literal["embedding", "embedding_f32", "codes"]
ROTATION_SEED = 20251129  # any fixed seed: the rotation is stored with the fit
COLUMN_OF_CODEC: dict[str, Column] = {"float16": "embedding", "float32": "embedding_f32"}


@dataclass(frozen=True)
class Fit:
    """Parameters learned from a sample of one tenant's embeddings, for one space."""

    version: int
    sample_size: int
    pca: codecs.Pca | None = None
    int8_scales: np.ndarray | None = None


class FitNeeded(RuntimeError):
    """The space's storage needs a fit the tenant does not have yet."""


def fit(profile: StorageProfile, dim: int, sample: np.ndarray, version: int) -> Fit:
    """Fit `profile`'s parameters on `sample` (model vectors, one per row)."""
    sample = codecs.check_vectors(sample)
    pca = _randomly_rotated(codecs.fit_pca(sample, profile.index_dim(dim))) if profile.pca_percent else None
    reduced = pca.project(sample) if pca else sample
    scales = codecs.fit_int8_scales(reduced) if profile.codec == "int8" else None
    return Fit(version=version, sample_size=len(sample), pca=pca, int8_scales=scales)


def _randomly_rotated(pca: codecs.Pca) -> codecs.Pca:
    """The same subspace in a random orthonormal basis (cosines unchanged). PCA coordinates have very uneven
    variances, so their signs, the binary candidate index, say little about the angle between two vectors; after
    a random rotation each sign is the side of a random hyperplane, and Hamming distance estimates the angle."""
    rng = np.random.default_rng(ROTATION_SEED)
    q, r = np.linalg.qr(rng.standard_normal((pca.k, pca.k)))
    q *= np.sign(np.diag(r))  # uniformly distributed over rotations
    components = (q @ pca.components.astype(np.float64)).astype(np.float32)
    return codecs.Pca(mean=pca.mean, components=components, explained_variance=pca.explained_variance)


class SpaceEncoding:
    """Encoder and decoder of one space's stored values for one tenant."""

    def __init__(self, storage: str, dim: int, fitted: Fit | None) -> None:
        self.profile = parse_profile(storage)
        if self.profile.needs_fit and fitted is None:
            raise FitNeeded(f"storage {storage} needs parameters fitted on the tenant's embeddings")
        self.dim = dim
        self.index_dim = self.profile.index_dim(dim)
        self.fit = fitted
        self.column: Column = COLUMN_OF_CODEC.get(self.profile.codec, "codes")

    def reduce(self, vectors: np.ndarray) -> np.ndarray:
        """Model vectors (n, dim) in this space's coordinates (n, index_dim), unit length."""
        vectors = codecs.check_vectors(vectors)
        if vectors.shape[1] != self.dim:
            raise codecs.InvalidVector(f"embeddings have {vectors.shape[1]} dimensions; this space takes {self.dim}")
        pca = self.fit.pca if self.fit else None
        return pca.project(vectors) if pca else vectors

    def encode(self, vectors: np.ndarray) -> list[Any]:
        """Values for this space's column, one per vector: float arrays for halfvec/vector, bytes for codes."""
        encoded = codecs.encode(self.profile.codec, self.reduce(vectors), self._scales())
        if self.column == "codes":
            return [row.tobytes() for row in encoded]
        return list(encoded)

    def decode(self, values: list[Any] | np.ndarray) -> np.ndarray:
        """Stored values back to vectors in this space's coordinates (binary: the sign vectors)."""
        if self.column != "codes":
            return np.asarray([_floats(v) for v in values], dtype=np.float32).reshape(len(values), self.index_dim)
        return codecs.decode(self.profile.codec, values, self.index_dim, self._scales())

    def model_vectors(self, values: list[Any]) -> np.ndarray | None:
        """Stored values as model vectors, where the storage keeps the model's coordinates (no PCA); else None."""
        if self.profile.pca_percent or self.profile.codec == "binary":
            return None
        return self.decode(values)

    @property
    def lossless_source(self) -> bool:
        """Stored values reproduce the model's vectors to float16 precision: good enough to re-encode from."""
        return self.profile.codec in ("float32", "float16") and not self.profile.pca_percent

    def _scales(self) -> np.ndarray | None:
        return self.fit.int8_scales if self.fit else None


def _floats(value: Any) -> Any:
    return value.to_list() if hasattr(value, "to_list") else value
