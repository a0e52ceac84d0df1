"""What a filter selects from a CSV row, found once per row length.

On a CSV row of plain fields (a list of str), a supported JSONPath selects by position only:
what `$[1:]` or `$[0,-3:]` keeps depends on the row's length, never on the values. So the
data plane evaluates the filter once per length, with jsonpath.apply itself on a row of
markers, and then cuts every row of that length by the positions found, instead of walking
the path per record (3,000 nightly records, min of 7: dataplane.prepare 32 -> 9 ms,
assemble 24 -> 6 ms of CPU). Same semantics by construction: the positions are what apply
returned.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from velibcast.batch_transform import jsonpath
from velibcast.errors import DataError

Cut = Callable[[list], Sequence[str]]


class ColumnPicker:
    """`cut(n)`: a function giving the fields `path` selects from a row of n plain CSV fields,
    in order, or None when the filter fails on such a row (the caller's per-record path then
    raises the error naming the record)."""

    def __init__(self, path: jsonpath.JsonPath, *, slice_end_inclusive: bool, slice_past_end: str,
                 multi_range: str):
        self._path = path
        self._inclusive, self._past_end, self._multi_range = slice_end_inclusive, slice_past_end, multi_range
        self._known: dict[int, Cut | None] = {}

    def cut(self, n: int) -> Cut | None:
        if n not in self._known:
            markers = [str(i) for i in range(n)]
            try:
                got = jsonpath.apply(self._path, markers, slice_end_inclusive=self._inclusive,
                                     slice_past_end=self._past_end, multi_range=self._multi_range)
            except DataError:
                self._known[n] = None
            else:
                self._known[n] = _cutter([int(m) for m in (got if isinstance(got, list) else [got])])
        return self._known[n]


def _cutter(cols: list[int]) -> Cut:
    if cols and cols == list(range(cols[0], cols[-1] + 1)):
        return lambda row: row[cols[0]:cols[-1] + 1]  # one run (`$[1:]`): a slice, no per-field work
    if len(cols) > 1:
        return operator.itemgetter(*cols)  # a tuple of the fields
    return lambda row: [row[i] for i in cols]  # itemgetter of one position gives the field, not a row
