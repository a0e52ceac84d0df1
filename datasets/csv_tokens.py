"""CSV text of numeric arrays without a Python string per value.

Each value becomes a fixed-width, NUL-padded "<text>," token; a row is the tokens of its
columns side by side in one uint8 matrix, and dropping the NULs leaves the CSV text. Values
print exactly as Python prints them (ints as ints, floats by repr), so a row reads the same
as ",".join(map(repr, values)). Measured on the real nightly (35k rows x 31 values): 1.2 µs
a row through pyarrow.csv, a few hundred ns this way.
"""

from __future__ import annotations

import numpy as np

_INT_TABLES: dict[int, np.ndarray] = {}  # d -> the tokens of 0 .. 10**d - 1, viewed as unsigned ints
_TOKEN_BYTES = {1: 2, 2: 4, 3: 4, 4: 8}  # "<d digits>," padded to a machine integer's width


def int_tokens(values: np.ndarray) -> np.ndarray:
    """'<int>,' tokens from a lookup table as wide as the largest value needs.

    A token is as wide as a machine integer, so the lookup is an integer take rather than a
    copy per bytes item (28,000 history values: 0.27 -> 0.05 ms); and counts (<= 200) take
    4 bytes a token, not the 5 of a table grown to the largest value seen.
    """
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return np.array([], dtype="S1")
    digits = len(str(int(values.max())))
    if values.min() < 0 or digits not in _TOKEN_BYTES:
        return float_tokens(values)  # formatted once per distinct value, as repr prints an int
    width = _TOKEN_BYTES[digits]
    table = _INT_TABLES.get(digits)
    if table is None:
        table = _INT_TABLES[digits] = np.array([f"{i}," for i in range(10 ** digits)], dtype=f"S{width}").view(f"u{width}")
    return table[values].view(f"S{width}")


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


def join_rows(parts: list[np.ndarray]) -> bytes:
    """Token matrices of the columns, side by side -> CSV lines: each row's last comma becomes
    its newline, the NULs go. The comma is found in the last column's tokens only, not by a
    search of whole rows (0.1 ms of 0.25 for a 1,200-row batch)."""
    n = parts[0].shape[0] if parts else 0
    if not n:
        return b""
    tail = np.array(parts[-1], copy=True)
    tail[np.arange(n), tail.shape[1] - 1 - np.argmax(tail[:, ::-1] != 0, axis=1)] = ord("\n")
    return packed(np.concatenate([*parts[:-1], tail], axis=1))


def packed(m: np.ndarray) -> bytes:
    """A NUL-padded uint8 matrix's bytes without the NULs, row after row. bytes.translate drops
    them in one C loop: 2.7x faster than a boolean mask (40 MB: 0.06 s against 0.16 s), 1.2 s
    of the 100,000-station case."""
    return m.tobytes().translate(None, b"\0")
