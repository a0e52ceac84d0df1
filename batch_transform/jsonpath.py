"""The JSONPath subset SageMaker Batch Transform accepts in InputFilter and OutputFilter.

Operators (BTS §3.2, the "Supported JSONPath Operators" table): `$`, `.name`, `*`,
`['a','b']`, `[i,j]` with negative indexes, `[start:end]`. A bracket may mix indexes and
slices. Several slices in one bracket (`$[0:2, 5:]`, listed by the developer guide) parse,
but the service accepts such a job and then fails each object with "Invalid JsonPath: ...
only single range filters are supported" (aws/sagemaker-python-sdk#1112), so apply()
fails the record by default (`multi_range`). Anything else (`..`, `?()`, functions) is
rejected at parse time, so a bad filter fails in validation, not mid-job.

Results follow Jayway JsonPath, the implementation AWS cites: a path made only of single
names/indexes returns the value itself (`$['class']` -> the class); a multi-index,
slice or wildcard returns a list; several names on an object return an object with
those keys. The slice end is inclusive by default (AWS docs: `$[1:4]` is the 2nd-5th
columns); `slice_end_inclusive=False` gives Jayway/Python's exclusive end. A slice bound
outside the row is an error by default, like an index (the guide: "indexes that aren't
within the dimension size ... you get an error"); `slice_past_end="clip"` clips as Jayway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from velibcast.errors import DataError, TerminalError


class JsonPathError(TerminalError):
    """A filter expression uses syntax outside the supported subset."""


@dataclass(frozen=True)
class Slice:
    start: int | None
    end: int | None


@dataclass(frozen=True)
class Step:
    kind: str                 # "names" | "indexes" | "wildcard"
    items: tuple = ()         # names (str) or indexes (int | Slice)

    @property
    def definite(self) -> bool:
        return self.kind != "wildcard" and len(self.items) == 1 and not isinstance(self.items[0], Slice)


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    @property
    def is_root(self) -> bool:
        return not self.steps

    @property
    def multi_range(self) -> bool:
        """Several slices in one bracket: listed by the guide, failed by the service."""
        return any(sum(isinstance(x, Slice) for x in st.items) > 1 for st in self.steps)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT = r"-?\d+"
_INDEX_ITEM = re.compile(rf"^\s*(?:({_INT})|({_INT})?\s*:\s*({_INT})?)\s*$")
_QUOTED = re.compile(r"""^\s*'([^']*)'\s*$""")


def parse(text: str) -> JsonPath:
    """Parse a filter; raise JsonPathError naming the position and the unsupported part."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise JsonPathError(f"filter {text!r}: must start with '$' (the root element)")
    steps: list[Step] = []
    i, n = 1, len(text)
    while i < n:
        c = text[i]
        if text.startswith("..", i):
            raise JsonPathError(f"filter {text!r}: recursive descent '..' at position {i} is not supported")
        if c == ".":
            i += 1
            if i < n and text[i] == "[":
                continue  # `$.field1.['a','b']` is documented as supported
            if i < n and text[i] == "*":
                steps.append(Step("wildcard"))
                i += 1
                continue
            m = _NAME.match(text, i)
            if not m:
                raise JsonPathError(f"filter {text!r}: expected a name after '.' at position {i}")
            steps.append(Step("names", (m.group(0),)))
            i = m.end()
        elif c == "[":
            close = _closing_bracket(text, i)
            steps.append(_bracket(text, text[i + 1:close], i))
            i = close + 1
        else:
            raise JsonPathError(f"filter {text!r}: unexpected {c!r} at position {i}; supported: $ . * [..] ['..']")
    return JsonPath(text, tuple(steps))


def _closing_bracket(text: str, start: int) -> int:
    quoted = False
    for j in range(start + 1, len(text)):
        if text[j] == "'":
            quoted = not quoted
        elif text[j] == "]" and not quoted:
            return j
    raise JsonPathError(f"filter {text!r}: '[' at position {start} is never closed")


def _bracket(text: str, body: str, pos: int) -> Step:
    stripped = body.strip()
    if stripped == "*":
        return Step("wildcard")
    if stripped.startswith("?") or stripped.startswith("("):
        raise JsonPathError(f"filter {text!r}: filter/script expressions at position {pos} are not supported")
    parts = body.split(",")
    if stripped.startswith("'"):
        names = []
        for p in parts:
            m = _QUOTED.match(p)
            if not m:
                raise JsonPathError(f"filter {text!r}: bad quoted name {p.strip()!r} at position {pos}")
            if "." in m.group(1):
                # AWS: `$.field1.['child1','child2.grandchild']` is not supported.
                raise JsonPathError(f"filter {text!r}: nested name {m.group(1)!r} inside brackets is not supported")
            names.append(m.group(1))
        return Step("names", tuple(names))
    items: list = []
    for p in parts:
        m = _INDEX_ITEM.match(p)
        if not m:
            raise JsonPathError(f"filter {text!r}: {p.strip()!r} at position {pos} is not an index or a slice")
        if m.group(1) is not None:
            items.append(int(m.group(1)))
        else:
            items.append(Slice(_opt_int(m.group(2)), _opt_int(m.group(3))))
    return Step("indexes", tuple(items))


def _opt_int(s: str | None) -> int | None:
    return None if s is None else int(s)


_MISSING = object()


MULTI_RANGE_MESSAGE = "only single range filters are supported; use one slice per bracket, e.g. '$[0,5:]'"


def apply(path: JsonPath, value, *, slice_end_inclusive: bool = True, slice_past_end: str = "error",
          multi_range: str = "fail_object", where: str = "record"):
    """Evaluate `path` on a decoded JSON value (a CSV row is a list of strings).
    `multi_range`: "fail_object" raises as the service does for several slices in one
    bracket, "apply" evaluates them (the guide's reading)."""
    if path.multi_range and multi_range != "apply":
        raise DataError(where, f"Invalid JsonPath: {path.text}: {MULTI_RANGE_MESSAGE}",
                        "split the ranges, e.g. '$[0,1,2,5:]'")
    current = [value]
    multi = False
    clip = slice_past_end == "clip"
    for step in path.steps:
        nxt = []
        for v in current:
            got = _apply_step(path, step, v, slice_end_inclusive, where, multi, clip)
            if got is _MISSING:
                continue
            if step.definite or (step.kind == "names" and isinstance(v, dict)):
                nxt.append(got)
            else:
                nxt.extend(got)
        multi = multi or not (step.definite or step.kind == "names")
        current = nxt
    if multi:
        return current
    return current[0]


def _apply_step(path, step, v, inclusive, where, lenient, clip):
    if step.kind == "wildcard":
        if isinstance(v, dict):
            return list(v.values())
        if isinstance(v, list):
            return list(v)
        return _MISSING if lenient else _fail(path, where, f"'*' applied to a {type(v).__name__}")
    if step.kind == "names":
        if not isinstance(v, dict):
            return _MISSING if lenient else _fail(path, where, f"name {step.items[0]!r} applied to a {type(v).__name__}")
        if step.definite:
            if step.items[0] not in v:
                return _MISSING if lenient else _fail(path, where, f"no attribute {step.items[0]!r}")
            return v[step.items[0]]
        return {k: v[k] for k in step.items if k in v}
    if not isinstance(v, list):
        return _MISSING if lenient else _fail(path, where, f"index applied to a {type(v).__name__}")
    n = len(v)
    if step.definite:
        i = step.items[0]
        if not -n <= i < n:
            return _MISSING if lenient else _fail(path, where, f"index {i} outside a row of {n} element(s)")
        return v[i]
    out = []
    for it in step.items:
        if isinstance(it, Slice):
            if not (clip or lenient):
                _check_slice(path, where, it, n, inclusive)
            r = slice_indexes(it, n, inclusive)
            out.extend(v[r.start:r.stop])
        else:
            if not -n <= it < n:
                if lenient:
                    continue
                _fail(path, where, f"index {it} outside a row of {n} element(s)")
            out.append(v[it])
    return out


def slice_indexes(s: Slice, n: int, inclusive: bool) -> range:
    start = 0 if s.start is None else (s.start + n if s.start < 0 else s.start)
    if s.end is None:
        end = n
    else:
        end = s.end + n if s.end < 0 else s.end
        if inclusive:
            end += 1
    start = 0 if start < 0 else start
    end = 0 if end < 0 else (n if end > n else end)
    return range(start, end)


def _check_slice(path: JsonPath, where: str, s: Slice, n: int, inclusive: bool) -> None:
    """A slice bound names an index (inclusive end) or the row's end (exclusive end); one
    outside the row is an error, as an index would be."""
    if s.start is not None and not -n <= s.start < n:
        _fail(path, where, f"slice start {s.start} outside a row of {n} element(s)")
    if s.end is not None:
        ok = -n <= s.end < n if inclusive else -n <= s.end <= n
        if not ok:
            _fail(path, where, f"slice end {s.end} outside a row of {n} element(s)")


def _fail(path: JsonPath, where: str, problem: str):
    raise DataError(where, f"filter {path.text!r}: {problem}",
                    "check the filter against the record layout (slice ends are inclusive by default)")
