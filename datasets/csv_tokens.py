"""CSV text of numeric arrays without a Python string per value.

Each value becomes a fixed-width, NUL-padded "<text>," token; a row is the tokens of its
columns side by side in one uint8 matrix, and dropping the NULs leaves the CSV text. Values
print exactly as Python prints them (ints as ints, floats by repr), so a row reads the same
as ",".join(map(repr, values)). Measured on the real nightly (35k rows x 31 values): 1.2 µs
a row through pyarrow.csv, a few hundred ns this way.
"""

from __future__ import annotations

import numpy as np

_INT_TABLES: dict[int, np.ndarray] = {}  # d -> the tokens of 0 .. 10**d - 1, each d + 1 bytes wide
_INT_TABLE_DIGITS_MAX = 4


def int_tokens(values: np.ndarray) -> np.ndarray:
    """'<int>,' tokens from a lookup table as wide as the largest value needs.

    One table per digit count, not one grown to the largest value seen: counts (<= 200) take
    4-byte tokens instead of 5, 24 bytes less padding a CSV row for join_rows to drop.
    """
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return np.array([], dtype="S1")
    digits = len(str(int(values.max())))
    if values.min() < 0 or digits > _INT_TABLE_DIGITS_MAX:
        return float_tokens(values)  # formatted once per distinct value, as repr prints an int
    table = _INT_TABLES.get(digits)
    if table is None:
        table = _INT_TABLES[digits] = np.array([f"{i}," for i in range(10 ** digits)], dtype=f"S{digits + 1}")
    return table[values]


def float_tokens(values: np.ndarray) -> np.ndarray:
    """'<repr>,' tokens, formatted once per distinct value (a station's lat/lon repeat across hours)."""
    values = np.asarray(values)
    if not len(values):
        return np.array([], dtype="S1")
    uniq, inv = np.unique(values, return_inverse=True)
    return np.array([f"{v!r}," for v in uniq.tolist()], dtype="S")[inv.reshape(-1)]


def token_matrix(tokens: np.ndarray) -> np.ndarray:
    """(n,) or (n, k) fixed-width bytes -> (n, k * width) uint8, NUL-padded."""
    return np.ascontiguousarray(tokens).view(np.uint8).reshape(tokens.shape[0], -1)


def join_rows(m: np.ndarray) -> bytes:
    """Rows of tokens -> CSV lines: each row's last comma becomes its newline, the NULs go."""
    n = m.shape[0]
    if not n:
        return b""
    m = np.array(m, copy=True) if not m.flags.writeable else m
    last = m.shape[1] - 1 - np.argmax(m[:, ::-1] != 0, axis=1)
    m[np.arange(n), last] = ord("\n")
    # bytes.translate drops the NULs in one C loop: 2.7x faster than a boolean mask (40 MB: 0.06 s
    # against 0.16 s), 1.2 s of the 100,000-station case
    return m.tobytes().translate(None, b"\0")
