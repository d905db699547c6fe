"""MinHash signatures of texts with numpy, for the near-duplicate and contamination checks.

A text's shingles (character or word n-grams of its normalised form, `filters.shingles`) are
hashed in one vectorised pass, not one Python call each: the units (characters as code points,
or words through crc32) are combined by a polynomial over each window of n units in uint64
(wrapping), mixed with the MurmurHash3 64-bit finalizer, and cut to their top 32 bits. The set
of those 32-bit values is then sketched exactly as datasketch's own `affine32` scheme does
(finalizer, then a_k * h + b_k in uint32, min per permutation), with datasketch's permutation
parameters for its default seed: a signature here equals
`MinHash(num_perm, hashfunc=lambda v: v)` updated with the same values (tested), and the result
is a datasketch `LeanMinHash` that its MinHashLSH indexes. Two different shingles share a 32-bit
value with probability ~2^-32 per pair: negligible against the estimator's own error.

Measured (benchmarks/bench_dedup.py): one pass per text, permutations along the rows of a
(num_perm x shingles) array, is as fast as concatenating many texts' shingles into one large
array and reducing per text with `np.minimum.reduceat`, and simpler.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import cache
from typing import Literal

import numpy as np
from datasketch import LeanMinHash, MinHash

ShingleUnit = Literal["char", "word"]
SEED = 1  # datasketch's default: its permutation parameters for it are used
SCHEME = "affine32"
_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the rolling polynomial
_FMIX64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_FMIX32 = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))
_U32 = (np.uint32(16), np.uint32(13))


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _fmix64(h: np.ndarray) -> np.ndarray:
    shift, m1, m2 = _FMIX64
    h = (h ^ (h >> shift)) * m1
    h = (h ^ (h >> shift)) * m2
    return h ^ (h >> shift)


def _fmix32(h: np.ndarray) -> np.ndarray:
    (m1, m2), (s16, s13) = _FMIX32, _U32
    h = (h ^ (h >> s16)) * m1
    h = (h ^ (h >> s13)) * m2
    return h ^ (h >> s16)


def shingle_hashes(text: str, size: int = 5, unit: ShingleUnit = "char") -> np.ndarray:
    """The sorted distinct 32-bit hashes of the text's shingles (a text shorter than n: one)."""
    return np.unique(_hashes(text, size, unit))


def _hashes(text: str, size: int, unit: ShingleUnit) -> np.ndarray:
    """The shingles' hashes, repeats included (a min does not care, and unique costs a sort)."""
    norm = normalise(text)
    if unit == "char":
        code_points = norm.encode("utf-32-le", "surrogatepass")
        units = np.frombuffer(code_points, dtype=np.uint32).astype(np.uint64)
    else:
        words = [zlib.crc32(word.encode("utf-8", "surrogatepass")) for word in norm.split()]
        units = _fmix64(np.array(words, dtype=np.uint64))
    width = min(size, len(units))
    count = len(units) - width + 1
    rolled = np.zeros(count, dtype=np.uint64)
    for k in range(width):
        rolled = rolled * _POLY + units[k : k + count]
    return (_fmix64(rolled) >> np.uint64(32)).astype(np.uint32)


@cache
def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters (a, b) for `num_perm` permutations and its seed."""
    a, b = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME).permutations
    return a, b


def signatures(
    texts: Sequence[str], num_perm: int = 128, size: int = 5, unit: ShingleUnit = "char"
) -> np.ndarray:
    """The MinHash values of each text, one row each (uint32, shape len(texts) x num_perm)."""
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    a, b = permutations(num_perm)
    a, b = a[:, None], b[:, None]  # permutations x shingles: the min runs along rows (faster)
    for row, text in enumerate(texts):
        out[row] = (_fmix32(_hashes(text, size, unit)) * a + b).min(axis=1)
    return out


def lean(values: np.ndarray) -> LeanMinHash:
    """One signature row as the datasketch object its LSH index takes."""
    return LeanMinHash(seed=SEED, hashvalues=values, scheme=SCHEME)


def minhash(
    text: str, num_perm: int = 128, size: int = 5, unit: ShingleUnit = "char"
) -> LeanMinHash:
    return lean(signatures([text], num_perm, size, unit)[0])
