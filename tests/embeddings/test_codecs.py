"""Embedding codecs against a float64 reference: round-trip error, cosine error and ranking, bit layout, PCA.

Inputs are fresh random vectors on every run, so the bounds below are derived from the formats rather than fitted
to one sample. Each test prints its seed and puts it in assertion messages; to replay a failure, set
CODECS_TEST_SEED to that seed.
"""

import os
import secrets

import numpy as np
import pytest

from memsvc.embeddings.codecs import (
    CODECS,
    FP8_SCALE,
    CodecName,
    InvalidVector,
    Pca,
    check_vectors,
    code_size,
    cosine_scores,
    decode,
    encode,
    fit_int8_scales,
    fit_pca,
    hamming_scores,
    sign_plane,
)

DIMS = (384, 192, 100)  # 100: not a multiple of 8, so sign planes and packed magnitudes end in padding
BYTE_CODECS: tuple[CodecName, ...] = ("fp8-e4m3", "fp8-e5m2", "int8", "binary")

# Explicit mantissa bits of each float format. Rounding to nearest makes the relative error of a value in the
# normal range at most the unit roundoff u = 2^-(m+1): half the spacing between neighbours, relative to the
# smallest value of the binade.
MANTISSA_BITS = {"float32": 23, "float16": 10, "fp8-e4m3": 3, "fp8-e5m2": 2}

# Smallest normal and smallest subnormal magnitudes, in the units stored (for fp8: after scaling by FP8_SCALE).
# Below the smallest normal the spacing is the smallest subnormal, so the absolute error is at most half of it.
SUBNORMAL_RANGE = {
    "float16": (2.0**-14, 2.0**-24),
    "fp8-e4m3": (2.0**-6, 2.0**-9),
    "fp8-e5m2": (2.0**-14, 2.0**-16),
}
F32_U = 2.0**-24  # encode first rounds the float64 input to float32


def fresh_rng() -> tuple[int, np.random.Generator]:
    seed = int(os.environ.get("CODECS_TEST_SEED") or secrets.randbits(32))
    print(f"CODECS_TEST_SEED={seed}")  # pytest shows captured output of failing tests
    return seed, np.random.default_rng(seed)


def unit_vectors(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Uniform on the unit sphere: normalised Gaussian vectors."""
    x = rng.standard_normal((n, k))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def with_edge_values(rng: np.random.Generator, k: int) -> np.ndarray:
    """Random unit vectors plus a row of edge values: extremes, zero, and magnitudes in every subnormal range."""
    x = unit_vectors(rng, 300, k)
    edges = [1.0, -1.0, 0.0, 2.0**-13, -(2.0**-13), 3e-5, -3e-5, 1e-7, -1e-7, 0.5, -0.25, 2.0**-12, -(2.0**-20)]
    x[0, : len(edges)] = edges
    return x


# --- sizes and bit layout ----------------------------------------------------------------------------------------


def test_code_size() -> None:
    assert code_size("float32", 384) == 1536
    assert code_size("float16", 384) == 768
    for codec in ("fp8-e4m3", "fp8-e5m2", "int8"):
        assert code_size(codec, 384) == 384
        assert code_size(codec, 192) == 192
        # 13 bytes of sign plane (100 bits + 4 padding) + 88 bytes of magnitudes (700 bits + 4 padding)
        assert code_size(codec, 100) == 101
    assert code_size("binary", 384) == 48
    assert code_size("binary", 100) == 13
    with pytest.raises(ValueError, match="unknown codec"):
        code_size("int4", 384)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", DIMS)
def test_encode_widths_equal_code_size(k: int) -> None:
    _, rng = fresh_rng()
    x = unit_vectors(rng, 5, k)
    scales = fit_int8_scales(unit_vectors(rng, 200, k))
    for codec in BYTE_CODECS:
        codes = encode(codec, x, scales)
        assert codes.dtype == np.uint8 and codes.shape == (5, code_size(codec, k)), codec
    for codec, dtype in (("float32", np.float32), ("float16", np.float16)):
        out = encode(codec, x)
        assert out.dtype == dtype and out.shape == (5, k)
        assert out.nbytes == 5 * code_size(codec, k)


def test_sign_plane_bit_order() -> None:
    # dims:   0    1     2    3     4    5     6      7    8    9
    x = np.array([[0.3, -0.1, 0.0, 0.2, 1e-9, -0.5, -1e-9, 0.7, 0.1, -0.2]])
    # Bit j set iff x_j > 0 (0 is unset, as in binary_quantize), dimension 0 in the most significant bit:
    # byte 0 = 1 0 0 1 1 0 0 1 = 0x99; byte 1 = 1 0 then six zero padding bits = 0x80.
    expected_bits = "1001100110"
    plane = sign_plane(x)
    assert plane.tolist() == [[0x99, 0x80]]
    # As Postgres reads it: ('x' || encode(plane, 'hex'))::bit(10) keeps the first 10 bits of the hex string.
    assert format(int(plane[0].tobytes().hex(), 16), "016b")[:10] == expected_bits
    # Every byte code starts with the sign plane, so the bytea prefix is the binary code.
    scales = np.full(10, 0.01, dtype=np.float32)
    for codec in BYTE_CODECS:
        assert encode(codec, x, scales)[0, :2].tolist() == [0x99, 0x80], codec


@pytest.mark.parametrize("k", DIMS)
def test_sign_plane_matches_signs_and_pads_with_zeros(k: int) -> None:
    seed, rng = fresh_rng()
    x = rng.standard_normal((50, k))
    bits = np.unpackbits(sign_plane(x), axis=1)
    np.testing.assert_array_equal(bits[:, :k], (x > 0).astype(np.uint8), err_msg=f"seed {seed}")
    assert not bits[:, k:].any(), f"padding bits set, seed {seed}"


# --- round trips -------------------------------------------------------------------------------------------------


def float_bound(codec: str, ref: np.ndarray) -> np.ndarray:
    """Per-element bound on |decode(encode(ref)) - ref| for the float codecs."""
    magnitude = np.abs(ref)
    # Two roundings, float64 -> float32 (u32 = 2^-24) then to the format (u): |error| <= (u + u32 (1 + u)) |x|,
    # which 2^-23 covers with room for the last-place slack of the comparison itself.
    u = 2.0 ** -(MANTISSA_BITS[codec] + 1)
    relative = (u + 2.0**-23) * magnitude
    if codec == "float32":
        return relative
    scale = FP8_SCALE if codec.startswith("fp8") else 1.0
    smallest_normal, smallest_subnormal = SUBNORMAL_RANGE[codec]
    # Below the normal range the spacing is fixed: half a subnormal step, unscaled, plus the float32 rounding.
    absolute = smallest_subnormal / 2 / scale + F32_U * magnitude
    return np.where(magnitude * scale >= smallest_normal, relative, absolute)


@pytest.mark.parametrize("k", DIMS)
@pytest.mark.parametrize("codec", ["float32", "float16", "fp8-e4m3", "fp8-e5m2"])
def test_float_codec_round_trip_within_format_precision(codec: CodecName, k: int) -> None:
    seed, rng = fresh_rng()
    ref = with_edge_values(rng, k)
    decoded = decode(codec, encode(codec, ref), k)
    assert decoded.dtype == np.float32 and decoded.shape == ref.shape
    error = np.abs(decoded.astype(np.float64) - ref)
    excess = error - float_bound(codec, ref)
    worst = np.unravel_index(np.argmax(excess), ref.shape)
    assert excess.max() <= 0, f"{codec} k={k} seed {seed}: x={ref[worst]!r} decoded {decoded[worst]!r}"
    # Signs survive wherever the value does not round to zero (the sign plane and the value agree).
    nonzero = decoded != 0
    assert (np.sign(decoded[nonzero]) == np.sign(ref[nonzero])).all(), f"seed {seed}"


@pytest.mark.parametrize("codec", ["fp8-e4m3", "fp8-e5m2"])
def test_fp8_zero_saturation_and_exact_values(codec: CodecName) -> None:
    tiny = 2.0**-30  # far below half the smallest subnormal / FP8_SCALE in both formats
    x = np.array([[1.0, -1.0, 0.5, -0.125, tiny, -tiny, 0.0, 1e4, -1e4]])
    decoded = decode(codec, encode(codec, x), 9)
    # Powers of two within range are exact; values rounding to zero decode as +0 whatever their sign.
    assert decoded[0, :4].tolist() == [1.0, -1.0, 0.5, -0.125]
    assert decoded[0, 4:7].tolist() == [0.0, 0.0, 0.0] and not np.signbit(decoded[0, 4:7]).any()
    # Far beyond the range, values saturate at the largest finite value (448 for e4m3, 57344 for e5m2).
    largest = 448.0 if codec == "fp8-e4m3" else 57344.0
    assert decoded[0, 7:].tolist() == [largest / FP8_SCALE, -largest / FP8_SCALE]


@pytest.mark.parametrize("k", DIMS)
def test_int8_round_trip_within_half_a_step(k: int) -> None:
    seed, rng = fresh_rng()
    scales = fit_int8_scales(unit_vectors(rng, 2000, k))
    assert scales.dtype == np.float32 and scales.shape == (k,)
    ref = with_edge_values(rng, k)  # the edge row's +-1 and 0.5 lie far beyond the calibrated range
    decoded = decode("int8", encode("int8", ref, scales), k, scales)
    s = scales.astype(np.float64)
    in_range = np.abs(ref) <= 127.5 * s  # rounds to |q| <= 127
    assert (~in_range).any(), "edge values should exercise clipping"
    # Round to nearest: |x/s - q| <= 1/2, so |x - q s| <= s/2; plus float32 rounding of x and of q * s.
    bound = s / 2 + F32_U * (np.abs(ref) + 128 * s)
    error = np.abs(decoded - ref)
    assert (error[in_range] <= np.broadcast_to(bound, ref.shape)[in_range]).all(), f"seed {seed}"
    # Beyond the range the value clips to +-127 steps, keeping its sign.
    clipped = np.sign(ref) * (np.float32(127) * scales)
    np.testing.assert_array_equal(decoded[~in_range], clipped[~in_range], err_msg=f"seed {seed}")


def test_int8_scales_floor_constant_dimensions() -> None:
    sample = np.zeros((10, 4))
    sample[:, 0] = np.linspace(-1, 1, 10)
    scales = fit_int8_scales(sample, quantile=1.0)
    assert scales[0] == pytest.approx(1 / 127)
    assert (scales[1:] > 0).all()
    # A zero dimension encodes and decodes to zero, not NaN.
    assert (decode("int8", encode("int8", sample, scales), 4, scales)[:, 1:] == 0).all()


@pytest.mark.parametrize("k", DIMS)
def test_binary_decodes_to_sign_vector(k: int) -> None:
    seed, rng = fresh_rng()
    x = with_edge_values(rng, k)
    expected = np.where(x > 0, 1.0, -1.0)
    np.testing.assert_array_equal(decode("binary", encode("binary", x), k), expected, err_msg=f"seed {seed}")


@pytest.mark.parametrize("codec", CODECS)
def test_decode_accepts_bytes_as_psycopg_returns_them(codec: CodecName) -> None:
    seed, rng = fresh_rng()
    k = 100
    x = unit_vectors(rng, 4, k)
    scales = fit_int8_scales(unit_vectors(rng, 200, k))
    codes = encode(codec, x, scales)
    rows = [row.tobytes() for row in codes]  # float codecs: little-endian, as np arrays are here
    assert all(len(row) == code_size(codec, k) for row in rows)
    np.testing.assert_array_equal(decode(codec, rows, k, scales), decode(codec, codes, k, scales), f"seed {seed}")
    assert decode(codec, [], k, scales).shape == (0, k)


# --- scores and ranking ------------------------------------------------------------------------------------------


def ranking_corpus(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A query, 66 documents at cosines 0.95, 0.94, ..., 0.30 to it, and 3000 random documents (cosine ~ 0)."""
    query = unit_vectors(rng, 1, k)[0]
    cosines = np.linspace(0.95, 0.30, 66)  # 0.01 apart: the true top 10 is unambiguous
    noise = unit_vectors(rng, 66, k)
    noise -= np.outer(noise @ query, query)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    planted = cosines[:, None] * query + np.sqrt(1 - cosines**2)[:, None] * noise
    return query, np.vstack([planted, unit_vectors(rng, 3000, k)])


def top(scores: np.ndarray, n: int) -> set[int]:
    return set(np.argsort(-scores, kind="stable")[:n].tolist())


# Cosine error of a decoded document d' = d + e against the float64 query q (both unit norm), per codec.
#
# Float formats: |e_j| <= u |d_j| (u = 2^-(m+1)), so |e| <= u and, since |q.e| <= |e| and ||d'| - 1| <= |e|,
# |cos(q, d') - cos(q, d)| <= 2u / (1 - u) in the worst case: 1.2e-7 for float32 and 9.8e-4 for float16, tight
# enough to assert outright. For fp8 the worst case (0.13 for e4m3) says little; rounding errors are independent and
# zero-mean, so q.e has standard deviation <= u sqrt(sum q_j^2 d_j^2) ~ u / sqrt(k) for spread-out vectors (about
# 1/sqrt(3) of that in practice: errors are uniform within +-half a step, a full u only at a binade's bottom). The
# test asserts the mean error below that sd bound and the largest of ~3000 pairs below 5 times it. Measured at
# k=384 (k=100): mean 1.1e-3 (2.1e-3) for e4m3, 2.1e-3 (4.1e-3) for e5m2, against bounds 3.2e-3 (6.3e-3) and
# 6.4e-3 (1.3e-2).
#
# int8: within the calibrated range |e_j| <= s_j / 2, beyond it e_j is the clipped excess; with eps = |e| from
# these per-element bounds, 2 eps / (1 - eps) bounds each pair exactly. The mean is held to the typical size of
# q.e, 0.5 sqrt(sum q_j^2 s_j^2) (measured about 0.6 of it: 5e-4 at k=384, 8e-4 at k=100).
#
# binary: bits differ with probability p = angle / pi, so h / k has sd sqrt(p (1 - p) / k) <= 1 / (2 sqrt(k)) and
# cos(pi h / k) has sd <= pi / (2 sqrt(k)) (0.08 at k=384). Measured mean 0.05 (0.095 at k=100), largest error over
# 3 million pairs 3.8 times the sd bound; asserted: mean below it, largest below 6 times it.
TOP10_OVERLAP = {"float32": 10, "float16": 10, "fp8-e4m3": 8, "fp8-e5m2": 8, "int8": 8, "binary": 4}


@pytest.mark.parametrize("k", DIMS)
@pytest.mark.parametrize("codec", CODECS)
def test_cosine_error_and_top10_against_float64(codec: CodecName, k: int) -> None:
    seed, rng = fresh_rng()
    query, docs = ranking_corpus(rng, k)
    scales = fit_int8_scales(unit_vectors(rng, 2000, k))
    reference = cosine_scores(query, docs)
    codes = encode(codec, docs, scales)
    if codec == "binary":
        scores = hamming_scores(query, codes, k)
    else:
        scores = cosine_scores(query, decode(codec, codes, k, scales))
    error = np.abs(scores - reference)
    mean, largest = float(error.mean()), float(error.max())
    context = f"{codec} k={k} seed {seed}: mean error {mean:.2e}, max {largest:.2e}"

    if codec in ("float32", "float16"):
        u = 2.0 ** -(MANTISSA_BITS[codec] + 1) + F32_U
        assert largest <= 2 * u / (1 - u), context
    elif codec in ("fp8-e4m3", "fp8-e5m2"):
        sd_bound = 2.0 ** -(MANTISSA_BITS[codec] + 1) / np.sqrt(k)
        assert mean <= sd_bound and largest <= 5 * sd_bound, context
    elif codec == "int8":
        s = scales.astype(np.float64)
        per_element = np.where(np.abs(docs) <= 127.5 * s, s / 2, np.abs(docs) - 127 * s)
        eps = np.linalg.norm(per_element, axis=1) + 1e-6  # + float32 rounding of x and q s
        assert (error <= 2 * eps / (1 - eps)).all(), context
        assert mean <= 0.5 * np.sqrt(np.sum(query**2 * s**2)), context
    else:
        sd_bound = np.pi / (2 * np.sqrt(k))
        assert mean <= sd_bound and largest <= 6 * sd_bound, context

    overlap = len(top(reference, 10) & top(scores, 10))
    assert overlap >= TOP10_OVERLAP[codec], f"{context}; top-10 overlap {overlap}"
    if codec == "binary":
        # Its job is candidate generation: the true top 10 must sit in the top 50 by Hamming distance.
        assert top(reference, 10) <= top(scores, 50), context


def test_hamming_scores_extremes_and_padding() -> None:
    seed, rng = fresh_rng()
    k = 100
    x = unit_vectors(rng, 1, k)[0]
    codes = encode("binary", np.vstack([x, -x]))
    assert hamming_scores(x, codes, k).tolist() == [1.0, -1.0]
    # Padding bits do not count, even if a stored code had them set.
    codes[:, -1] |= 0x0F
    assert hamming_scores(x, codes, k).tolist() == [1.0, -1.0], f"seed {seed}"
    # Longer codes (an fp8/int8 bytea) are scored by their sign-plane prefix.
    np.testing.assert_array_equal(hamming_scores(x, encode("fp8-e4m3", x[None, :]), k), [1.0])


def test_cosine_scores_of_zero_vectors_are_zero() -> None:
    vectors = np.array([[0.0, 0.0], [3.0, 4.0], [-4.0, 3.0]])
    assert cosine_scores(np.array([3.0, 4.0]), vectors).tolist() == [0.0, 1.0, 0.0]
    assert cosine_scores(np.zeros(2), vectors).tolist() == [0.0, 0.0, 0.0]


# --- invalid input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("codec", CODECS)
def test_non_finite_values_are_refused(codec: CodecName, bad: float) -> None:
    x = np.ones((5, 16)) / 4
    x[3, 7] = bad
    with pytest.raises(InvalidVector, match="embedding 3 has NaN or infinite values"):
        encode(codec, x, np.ones(16, dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_by_pca(bad: float) -> None:
    _, rng = fresh_rng()
    pca = fit_pca(rng.standard_normal((40, 16)), 4)
    x = rng.standard_normal((3, 16))
    x[2, 0] = bad
    with pytest.raises(InvalidVector, match="embedding 2"):
        pca.project(x)
    with pytest.raises(InvalidVector, match="embedding 2"):
        fit_pca(x, 1)


def test_malformed_arrays_are_refused() -> None:
    with pytest.raises(InvalidVector, match="2-D"):
        check_vectors(np.ones(8))
    with pytest.raises(InvalidVector, match="zero dimensions"):
        check_vectors(np.ones((3, 0)))
    with pytest.raises(InvalidVector, match="float32 range"):
        check_vectors(np.full((1, 4), 1e300))
    with pytest.raises(InvalidVector, match="float16 range"):
        encode("float16", np.full((1, 4), 1e5))


def test_int8_scales_are_required_and_checked() -> None:
    x = np.ones((2, 8)) / np.sqrt(8)
    with pytest.raises(ValueError, match="scales"):
        encode("int8", x)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        encode("int8", x, np.ones(7, dtype=np.float32))
    codes = encode("int8", x, np.full(8, 0.01, dtype=np.float32))
    with pytest.raises(ValueError, match="scales"):
        decode("int8", codes, 8)


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        encode("int4", np.ones((1, 8)))  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", CODECS)
def test_decode_refuses_wrong_lengths(codec: CodecName) -> None:
    k = 100
    size = code_size(codec, k)
    with pytest.raises(ValueError, match=f"code 1 has {size - 1} bytes, expected {size}"):
        decode(codec, [bytes(size), bytes(size - 1)], k, np.ones(k, dtype=np.float32))
    with pytest.raises(ValueError, match="must have shape"):
        decode(codec, np.zeros((2, size + 1), dtype=np.uint8), k, np.ones(k, dtype=np.float32))


def test_decode_refuses_corrupt_fp8_codes() -> None:
    # 0x7F is e4m3's NaN pattern: encode never writes it, so a stored code holding it is corrupt.
    codes = encode("fp8-e4m3", np.full((1, 8), 0.1))
    codes[0, 1:] = 0xFF
    with pytest.raises(InvalidVector, match="not a valid fp8-e4m3 code"):
        decode("fp8-e4m3", codes, 8)


# --- PCA ---------------------------------------------------------------------------------------------------------


def test_pca_components_are_orthonormal_and_sign_fixed() -> None:
    seed, rng = fresh_rng()
    sample = rng.standard_normal((300, 48)) * np.linspace(3, 0.1, 48)
    pca = fit_pca(sample, 16)
    assert pca.components.shape == (16, 48) and pca.mean.shape == (48,)
    assert pca.components.dtype == np.float32 and pca.mean.dtype == np.float32
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(16), atol=1e-5, err_msg=f"seed {seed}")
    assert 0 < pca.explained_variance <= 1
    # Sign convention: each component's largest loading is positive, so refits give identical bytes.
    pivots = pca.components[np.arange(16), np.abs(pca.components).argmax(axis=1)]
    assert (pivots > 0).all()
    assert fit_pca(sample, 16).to_bytes() == pca.to_bytes()


def test_pca_with_all_components_keeps_cosines_of_centred_vectors() -> None:
    seed, rng = fresh_rng()
    d = 32
    sample = unit_vectors(rng, 200, d) + 0.3  # an offset the mean must remove
    pca = fit_pca(sample, d)
    assert pca.explained_variance == pytest.approx(1.0)
    x = unit_vectors(rng, 50, d) + 0.3
    projected = pca.project(x)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-6)
    centred = x - pca.mean
    for i in range(5):
        np.testing.assert_allclose(
            cosine_scores(projected[i], projected),
            cosine_scores(centred[i], centred),
            atol=1e-5,
            err_msg=f"seed {seed}",
        )


def test_pca_recovers_low_rank_structure() -> None:
    seed, rng = fresh_rng()
    n, d, r = 500, 64, 8
    basis = np.linalg.qr(rng.standard_normal((d, r)))[0].T  # (r, d) orthonormal
    # Signal variance r (latents N(0, 1)) against noise variance d * 0.01^2 = 0.0064: k = r keeps ~0.999.
    sample = rng.standard_normal((n, r)) @ basis + 0.01 * rng.standard_normal((n, d)) + 0.5
    pca = fit_pca(sample, r)
    assert pca.explained_variance > 0.99, f"seed {seed}: {pca.explained_variance}"
    # The components span the planted subspace.
    np.testing.assert_allclose(np.linalg.svd(pca.components @ basis.T)[1], 1.0, atol=1e-3, err_msg=f"seed {seed}")


def test_pca_bytes_round_trip_exactly() -> None:
    _, rng = fresh_rng()
    pca = fit_pca(rng.standard_normal((100, 24)), 6)
    mean, components = pca.to_bytes()
    assert len(mean) == 24 * 4 and len(components) == 6 * 24 * 4
    restored = Pca.from_bytes(mean, components, dim=24, explained_variance=pca.explained_variance)
    np.testing.assert_array_equal(restored.mean, pca.mean)
    np.testing.assert_array_equal(restored.components, pca.components)
    assert restored.explained_variance == pca.explained_variance
    x = rng.standard_normal((5, 24))
    np.testing.assert_array_equal(restored.project(x), pca.project(x))
    with pytest.raises(ValueError, match="expected 96"):
        Pca.from_bytes(mean[:-4], components, dim=24, explained_variance=0.5)
    with pytest.raises(ValueError, match="multiple of 96"):
        Pca.from_bytes(mean, components[:-4], dim=24, explained_variance=0.5)


def test_pca_refuses_bad_k_and_small_samples() -> None:
    _, rng = fresh_rng()
    sample = rng.standard_normal((10, 16))
    with pytest.raises(ValueError, match="at least 11 sample rows, got 10"):
        fit_pca(sample, 10)
    with pytest.raises(ValueError, match="1 <= k <= d"):
        fit_pca(sample, 0)
    with pytest.raises(ValueError, match="1 <= k <= d"):
        fit_pca(rng.standard_normal((40, 16)), 17)
    with pytest.raises(InvalidVector, match="PCA expects 16"):
        fit_pca(sample, 4).project(np.ones((1, 8)))
