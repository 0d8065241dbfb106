"""Sticky bucketing: where a context falls in a percentage rollout or a weighted split.

Every algorithm yields a bucket number and the cumulative *bounds* of the slices; a context
is in slice ``i`` when ``bucket < bounds[i]`` (and not in an earlier slice). Raising the first
slice's share only raises its bound, so no context already included ever leaves it.

``rollwave`` (native)
    ``bucket = murmur3_x86_32(utf8(value), seed=murmur3_x86_32(utf8(salt), 0)) mod 10000``;
    10,000 buckets give 0.01 % resolution. The salt defaults to the flag key.
``flagd``
    flagd's ``fractional`` as implemented by flagd core today: the canonical CBOR encoding of
    ``[flagKey, targetingKey]`` (or of the ``bucketBy`` value alone when the salt is ``""``)
    hashed with unsigned murmur3, ``bucket = (hash * totalWeight) >> 32``.
``unleash``
    Unleash's ``normalizedValue``: ``murmur3(f"{groupId}:{value}", seed) mod N``, with seed 0
    and N = 100 for strategy percentages and seed 86028157 and N = total weight for variants.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import mmh3

BUCKETS = 10_000
UNLEASH_VARIANT_SEED = 86028157

BucketFn = Callable[[str], float]
"""Maps a (string) bucketing value to a bucket number."""


def rollwave_seed(salt: str) -> int:
    """The murmur3 seed derived from a flag's salt."""
    return int(mmh3.hash(salt, 0, False))


def rollwave_bucket(value: str, salt: str) -> int:
    """The native bucket (0-9999) of ``value`` under ``salt``."""
    return int(mmh3.hash(value, rollwave_seed(salt), False)) % BUCKETS


def weight_bounds(weights: Sequence[float], scale: float) -> list[float]:
    """Cumulative upper bounds of each slice, scaled so the last bound equals ``scale``."""
    total = float(sum(weights))
    bounds: list[float] = []
    running = 0.0
    for weight in weights:
        running += weight
        bounds.append(round(running / total * scale) if total else 0.0)
    return bounds


def cbor(value: Any) -> bytes:
    """Canonical (RFC 8949 core deterministic) CBOR of JSON-like data, as flagd hashes it."""
    out = bytearray()
    _cbor_into(value, out)
    return bytes(out)


def _head(major: int, length: int, out: bytearray) -> None:
    if length < 24:
        out.append(major << 5 | length)
    elif length < 0x100:
        out += bytes((major << 5 | 24, length))
    elif length < 0x10000:
        out.append(major << 5 | 25)
        out += length.to_bytes(2, "big")
    elif length < 0x100000000:
        out.append(major << 5 | 26)
        out += length.to_bytes(4, "big")
    else:
        out.append(major << 5 | 27)
        out += length.to_bytes(8, "big")


def _cbor_into(value: Any, out: bytearray) -> None:  # noqa: PLR0912
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, float) and value.is_integer() and -(2**63) <= value <= 2**64 - 1:
        _cbor_into(int(value), out)
    elif isinstance(value, int):
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif isinstance(value, float):
        _cbor_float(value, out)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, list | tuple):
        _head(4, len(value), out)
        for item in value:
            _cbor_into(item, out)
    elif isinstance(value, dict):
        items = sorted((cbor(k), v) for k, v in value.items())
        _head(5, len(items), out)
        for key, item in items:
            out += key
            _cbor_into(item, out)
    else:
        _cbor_into(str(value), out)


def _cbor_float(value: float, out: bytearray) -> None:
    if math.isnan(value):
        out += b"\xf9\x7e\x00"
        return
    for fmt, head in (("e", 0xF9), ("f", 0xFA)):
        try:
            packed = struct.pack(">" + fmt, value)
        except OverflowError:
            continue
        if struct.unpack(">" + fmt, packed)[0] == value:
            out.append(head)
            out += packed
            return
    out.append(0xFB)
    out += struct.pack(">d", value)


def flagd_bucket(value: Any, flag_key: str | None, total_weight: int) -> int:
    """flagd's fractional bucket: ``[flag_key, value]`` (or ``value`` if no key) via CBOR."""
    subject = [flag_key, value] if flag_key is not None else value
    return (int(mmh3.hash(cbor(subject), 0, False)) * total_weight) >> 32


def make_bucket_fn(algorithm: str, salt: str, *, purpose: str, total: float) -> BucketFn:
    """The bucket function for ``algorithm``; ``purpose`` is ``gate`` or ``split``.

    ``total`` is the sum of weights for splits (flagd and Unleash bucket relative to it).
    """
    if algorithm == "rollwave":
        seed = rollwave_seed(salt)
        hash32 = mmh3.hash

        def native(value: str) -> float:
            return int(hash32(value, seed, False)) % BUCKETS
        return native
    if algorithm == "flagd":
        weight = int(total) if purpose == "split" else 100
        key = salt if salt else None
        return lambda value: float(flagd_bucket(value, key, weight))
    if algorithm == "unleash":
        if purpose == "gate":
            return lambda value: int(mmh3.hash(f"{salt}:{value}", 0, False)) % 100
        modulus = max(int(total), 1)
        return lambda value: int(mmh3.hash(f"{salt}:{value}", UNLEASH_VARIANT_SEED,
                                           False)) % modulus
    raise ValueError(f"unknown bucketing algorithm {algorithm!r}")


def bounds_for(algorithm: str, weights: Sequence[float]) -> list[float]:
    """Slice bounds in the bucket units of ``algorithm`` for a split's weights."""
    if algorithm == "rollwave":
        return weight_bounds(weights, BUCKETS)
    bounds, running_int = [], 0.0
    for weight in weights:  # flagd and Unleash use the raw integer weights
        running_int += weight
        bounds.append(running_int)
    return bounds


def gate_bound(algorithm: str, percentage: float) -> float:
    """The bound under which a bucket is inside a ``percentage`` gate."""
    if algorithm == "rollwave":
        return round(percentage * 100)
    if algorithm == "unleash":
        return math.floor(percentage)
    if algorithm == "flagd":
        return percentage  # bucket over total weight 100
    return percentage
