"""The JSONPath subset of DataProcessing filters (BTS §3.2): every operator and example."""

import pytest

from velibcast.batch_transform import jsonpath as jp
from velibcast.errors import DataError

ROW = list(range(10))  # a CSV row is a JSON array


def ev(expr, value, inclusive=True):
    return jp.apply(jp.parse(expr), value, slice_end_inclusive=inclusive)


def test_root_returns_the_record():
    assert ev("$", ROW) == ROW
    assert ev("$", {"a": 1}) == {"a": 1}


def test_dot_child():
    assert ev("$.id", {"id": 7, "x": 1}) == 7
    assert ev("$.features", {"features": [1, 2]}) == [1, 2]


def test_wildcard_on_object_and_array():
    assert ev("$.id.*", {"id": {"a": 1, "b": 2}}) == [1, 2]
    assert ev("$[*]", [1, 2]) == [1, 2]
    assert ev("$.*", {"a": 1, "b": 2}) == [1, 2]


def test_bracket_names_return_an_object_with_those_keys():
    rec = {"id": 1, "SageMakerOutput": {"label": 0}, "other": 3}
    assert ev("$['id','SageMakerOutput']", rec) == {"id": 1, "SageMakerOutput": {"label": 0}}


def test_single_bracket_name_returns_the_value_itself():
    # NB-AG: output_filter="$['class']" yields the value, not a wrapper object.
    assert ev("$['class']", {"class": {"0": "a"}}) == {"0": "a"}


def test_nested_bracket_names_after_a_dot():
    assert ev("$.field1.['child1','child2']", {"field1": {"child1": 1, "child2": 2, "c3": 3}}) == {"child1": 1, "child2": 2}


def test_nested_dotted_name_inside_brackets_is_rejected():
    with pytest.raises(jp.JsonPathError, match="nested name"):
        jp.parse("$.field1.['child1','child2.grandchild']")


def test_indexes_and_negative_indexes():
    assert ev("$[1]", ROW) == 1
    assert ev("$[1,3,5]", ROW) == [1, 3, 5]
    assert ev("$[-1]", ROW) == 9
    assert ev("$[0,-1]", ROW) == [0, 9]


def test_slices_inclusive_end_by_default_as_aws_docs():
    assert ev("$[1:4]", ROW) == [1, 2, 3, 4]          # "second through fifth columns"
    assert ev("$[:5]", ROW) == [0, 1, 2, 3, 4, 5]     # "first through sixth"
    assert ev("$[5:]", ROW) == [5, 6, 7, 8, 9]        # "sixth through last"
    assert ev("$[2:5]", ROW) == [2, 3, 4, 5]
    assert ev("$[0:2]", ROW) == [0, 1, 2]             # DG-DP-2019: "first three columns"


def test_slices_exclusive_end_setting_as_jayway():
    assert ev("$[1:4]", ROW, inclusive=False) == [1, 2, 3]
    assert ev("$[:5]", ROW, inclusive=False) == [0, 1, 2, 3, 4]
    assert ev("$[5:]", ROW, inclusive=False) == [5, 6, 7, 8, 9]


def test_index_plus_one_range_and_negative_slice():
    assert ev("$[0,5:]", ROW) == [0, 5, 6, 7, 8, 9]
    assert ev("$[0,-3:]", ROW) == [0, 7, 8, 9]          # record_id + the three outputs
    assert ev("$[1:]", ROW) == ROW[1:]


def test_autogluon_example_selects_the_feature_count_with_inclusive_end():
    row = list(range(16))  # index column + 14 features + label
    assert len(ev("$[:14]", row)) == 15


def test_several_ranges_in_one_bracket_are_rejected_as_by_the_service():
    with pytest.raises(jp.JsonPathError, match="single range"):
        jp.parse("$[0:2,246:]")
    with pytest.raises(jp.JsonPathError, match="single range"):
        jp.parse("$[0:2, 5:]")


@pytest.mark.parametrize("expr", ["$..id", "$[?(@.a>1)]", "$.length()", "id", "$.a b", "$[1", "$['a]"])
def test_unsupported_syntax_is_rejected_at_parse_time(expr):
    with pytest.raises(jp.JsonPathError):
        jp.parse(expr)


def test_out_of_range_index_is_an_error_naming_the_record():
    with pytest.raises(DataError, match="obj line 3.*index 12 outside a row of 10"):
        jp.apply(jp.parse("$[12]"), ROW, where="obj line 3")


def test_missing_attribute_is_an_error():
    with pytest.raises(DataError, match="no attribute 'x'"):
        ev("$.x", {"a": 1})


def test_slice_past_the_end_is_clamped():
    assert ev("$[8:20]", ROW) == [8, 9]
