"""What a filter selects from a CSV row, found once per row length.

On a CSV row of plain fields (a list of str), a supported JSONPath selects by position only:
what `$[1:]` or `$[0,-3:]` keeps depends on the row's length, never on the values. So the
data plane evaluates the filter once per length, with jsonpath.apply itself on a row of
markers, and then cuts every line of that length by the positions found, instead of walking
the path per record (3,000 nightly records, min of 7: dataplane.prepare 32 -> 5 ms,
assemble 24 -> 6 ms of CPU). Same semantics by construction: the positions are what apply
returned.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from velibcast.batch_transform import jsonpath
from velibcast.errors import DataError

Cut = Callable[[str], str]
JoinCut = Callable[[str, str], str]


class ColumnPicker:
    """`cut(n)`: a function from a line of n plain CSV fields (no quote: every comma separates)
    to the text of the fields `path` selects, in order, comma-separated; or None when the
    filter fails on such a row (the caller's per-record path then raises the error naming the
    record)."""

    def __init__(self, path: jsonpath.JsonPath, *, slice_end_inclusive: bool, slice_past_end: str,
                 multi_range: str):
        self._path = path
        self._inclusive, self._past_end, self._multi_range = slice_end_inclusive, slice_past_end, multi_range
        self._known: dict[int, list[int] | None] = {}
        self._cuts: dict[int, Cut | None] = {}
        self._joins: dict[tuple[int, int], JoinCut | None] = {}

    def columns(self, n: int) -> list[int] | None:
        """The positions `path` selects from a row of n fields, in order; None if it fails."""
        if n not in self._known:
            markers = [str(i) for i in range(n)]
            try:
                got = jsonpath.apply(self._path, markers, slice_end_inclusive=self._inclusive,
                                     slice_past_end=self._past_end, multi_range=self._multi_range)
            except DataError:
                self._known[n] = None
            else:
                self._known[n] = [int(m) for m in (got if isinstance(got, list) else [got])]
        return self._known[n]

    def cut(self, n: int) -> Cut | None:
        if n not in self._cuts:
            cols = self.columns(n)
            self._cuts[n] = None if cols is None else _cutter(cols, n)
        return self._cuts[n]

    def join_cut(self, n_in: int, n_out: int) -> JoinCut | None:
        """cut() of the joined row `input line,output line` (CSV JoinSource=Input), taken from
        the two lines: `$[0,-3:]` keeps the input's first field and the whole output line."""
        if (n_in, n_out) not in self._joins:
            self._joins[n_in, n_out] = self._join_cut(n_in, n_out)
        return self._joins[n_in, n_out]

    def _join_cut(self, n_in: int, n_out: int) -> JoinCut | None:
        cols = self.columns(n_in + n_out)
        if cols is None:
            return None
        left = [c for c in cols if c < n_in]
        right = [c - n_in for c in cols if c >= n_in]
        if cols != left + [c + n_in for c in right]:  # output fields before input ones
            whole = _cutter(cols, n_in + n_out)
            return lambda a, b: whole(a + "," + b)
        lc, rc = _cutter(left, n_in), _cutter(right, n_out)
        if not left:
            return lambda a, b: rc(b)
        if not right:
            return lambda a, b: lc(a)
        return lambda a, b: lc(a) + "," + rc(b)


def _cutter(cols: list[int], n: int) -> Cut:
    if not cols:
        return lambda line: ""
    first, last = cols[0], cols[-1]
    if cols == list(range(first, last + 1)):  # one run: split no further than it ends
        if last == n - 1:
            return (lambda line: line) if first == 0 else (lambda line: line.split(",", first)[first])
        if first == 0:
            return lambda line: ",".join(line.split(",", last + 1)[:last + 1])
        return lambda line: ",".join(line.split(",")[first:last + 1])
    if len(cols) == 1:
        return lambda line: line.split(",")[first]
    pick = operator.itemgetter(*cols)
    return lambda line: ",".join(pick(line.split(",")))
