"""The data plane as pure functions: splitting, packing, join, filters, assembly (BTS §2-§3)."""

import json

import pytest

from velibcast import constants as C
from velibcast.batch_transform import dataplane as dp
from velibcast.errors import ConfigError, DataError


def proc(ct="text/csv", accept=None, split="Line", strategy="MultiRecord", mb=6, inp="$", out="$",
         join=False, assemble="Line", **settings):
    spec = {
        "TransformInput": {"ContentType": ct, "SplitType": split},
        "TransformOutput": {"Accept": accept or ct, "AssembleWith": assemble},
        "DataProcessing": {"InputFilter": inp, "OutputFilter": out, "JoinSource": "Input" if join else "None"},
    }
    return dp.Processing.from_spec(spec, strategy, mb, dp.DataPlaneSettings(**settings))


def run(p, data: bytes, answer):
    """Prepare, answer each request with answer(payload) -> bytes, assemble."""
    obj = dp.prepare("s3://b/in/x.csv", data, p)
    return obj, dp.assemble(obj, [answer(b.payload) for b in obj.batches], p)


def csv_sum(payload: bytes) -> bytes:
    return b"".join(str(sum(int(x) for x in ln.split(b","))).encode() + b"\n" for ln in payload.splitlines())


# ------------------------------------------------------------ splitting and packing
def test_line_split_drops_final_newline_and_cr():
    assert dp.split_lines(b"a\r\nb\nc") == [b"a", b"b", b"c"]
    assert dp.split_lines(b"a\nb\n") == [b"a", b"b"]
    assert dp.split_lines(b"") == []


def test_multirecord_packs_up_to_max_payload():
    p = proc(mb=1)
    line = b"x" * (C.MB // 4 - 1)  # 4 lines with their newline fill exactly 1 MB
    obj = dp.prepare("o", b"\n".join([line] * 9) + b"\n", p)
    assert [b.count for b in obj.batches] == [4, 4, 1]
    assert [b.first_line for b in obj.batches] == [1, 5, 9]
    assert all(len(b.payload) <= C.MB for b in obj.batches)
    assert obj.batches[0].payload == (line + b"\n") * 4


def test_single_record_sends_one_record_per_request():
    obj = dp.prepare("o", b"1,2\n3,4\n", proc(strategy="SingleRecord"))
    assert [b.payload for b in obj.batches] == [b"1,2\n", b"3,4\n"]


def test_split_none_sends_the_whole_object_once():
    data = b"1,2\n3,4\n"
    obj = dp.prepare("o", data, proc(split="None"))
    assert [b.payload for b in obj.batches] == [data]


def test_a_record_over_the_limit_fails_its_object_naming_the_line():
    with pytest.raises(DataError, match=r"o line 2: record of \d+ bytes exceeds MaxPayloadInMB=1"):
        dp.prepare("o", b"1\n" + b"x" * C.MB + b"\n", proc(mb=1))


def test_an_unsplittable_object_over_the_limit_fails():
    with pytest.raises(DataError, match="SplitType=None"):
        dp.prepare("o", b"x" * (C.MB + 1), proc(mb=1, split="None"))


def test_max_payload_zero_means_no_limit():
    obj = dp.prepare("o", b"x" * (2 * C.MB) + b"\n", proc(mb=0))
    assert len(obj.batches) == 1


@pytest.mark.parametrize("split", ["RecordIO", "TFRecord"])
def test_binary_splits_are_not_supported_locally(split):
    with pytest.raises(DataError, match="not supported locally"):
        dp.prepare("o", b"x", proc(split=split))


# ------------------------------------------------------------ CSV data processing
def test_input_filter_is_applied_to_each_record():
    obj = dp.prepare("o", b"id1,1,2\nid2,3,4\n", proc(inp="$[1:]"))
    assert obj.batches[0].payload == b"1,2\n3,4\n"


def test_csv_join_appends_the_output_after_the_unfiltered_input():
    # DG-DP: record [1,2,3] with label [1] -> [1,2,3,1]; the input filter does not shrink it.
    _, out = run(proc(inp="$[1:]", join=True), b"1,2,3\n", lambda p: b"1\n")
    assert out == b"1,2,3,1\n"


def test_output_filter_applies_after_the_join():
    # The nightly's filters: send features, keep record_id and the three outputs.
    _, out = run(proc(inp="$[1:]", out="$[0,-3:]", join=True), b"st1@t,5,6\nst2@t,7,8\n",
                 lambda p: b"".join(b"1,2,3\n" for _ in p.splitlines()))
    assert out == b"st1@t,1,2,3\nst2@t,1,2,3\n"


def test_api_reference_output_filter_example_index_and_range():
    _, out = run(proc(out="$[0,5:]", join=True), b"a,b,c,d,e\n", lambda p: b"f,g\n")
    assert out == b"a,f,g\n"


def test_output_filter_without_join_filters_the_response():
    _, out = run(proc(out="$[1]"), b"1,2\n", lambda p: b"x,y\n")
    assert out == b"y\n"


def test_output_filter_index_beyond_the_joined_row_is_an_error():
    with pytest.raises(DataError, match=r"line 1 \(joined record\).*index 9 outside a row of 3"):
        run(proc(out="$[9]", join=True), b"1,2\n", lambda p: b"3\n")


def test_one_output_record_per_input_record_is_enforced_naming_object_and_lines():
    with pytest.raises(DataError, match=r"s3://b/in/x.csv lines 1-2: the container returned 3 record\(s\) for a mini-batch of 2"):
        run(proc(join=True), b"1\n2\n", lambda p: b"a\nb\nc\n")


def test_mismatch_line_numbers_follow_the_mini_batch():
    with pytest.raises(DataError, match="lines 2-2"):
        run(proc(join=True, strategy="SingleRecord"), b"1\n2\n", lambda p: b"a\n" if p == b"1\n" else b"")


def test_record_alignment_setting_without_join():
    answer = lambda p: b"one answer for the batch\n"
    _, out = run(proc(), b"1\n2\n", answer)  # when_joining: the service passes it through
    assert out == b"one answer for the batch\n\n"
    with pytest.raises(DataError, match="returned 1 record"):
        run(proc(record_alignment="always"), b"1\n2\n", answer)


def test_csv_output_that_is_not_csv_fails_like_the_service():
    with pytest.raises(DataError, match='Failed to parse output from the algorithm as CSV: bare "'):
        run(proc(join=True), b"1\n", lambda p: b'{"a": "b"}\n')


def test_quoted_csv_fields_are_parsed_per_rfc4180():
    assert dp.parse_csv_line('a,"b,c","d""e",') == ["a", "b,c", 'd"e', ""]


def test_csv_quoting_minimal_reencodes_fields():
    p = proc(join=True, out="$[1,2]")
    _, out = run(p, b'x," a,b"\n', lambda q: b"1\n")
    assert out == b'" a,b",1\n'    # a field starting with a space is quoted (Go encoding/csv)


def test_csv_quoting_verbatim_keeps_input_text():
    p = proc(join=True, csv_quoting="verbatim")
    _, out = run(p, b'"x",y\n', lambda q: b'"1"\n')
    assert out == b'"x",y,"1"\n'
    _, out = run(proc(join=True), b'"x",y\n', lambda q: b'"1"\n')
    assert out == b"x,y,1\n"


# ------------------------------------------------------------ assembly and newlines
def test_assemble_with_line_appends_newline_after_every_response_by_default():
    _, out = run(proc(strategy="SingleRecord"), b"1\n2\n", lambda p: p)
    assert out == b"1\n\n2\n\n"


def test_newline_if_missing_setting():
    _, out = run(proc(strategy="SingleRecord", newline_after_response="if_missing"), b"1\n2\n", lambda p: p.strip())
    assert out == b"1\n2\n"
    _, out = run(proc(strategy="SingleRecord", newline_after_response="if_missing"), b"1\n2\n", lambda p: p)
    assert out == b"1\n2\n"


def test_assemble_with_none_concatenates_responses():
    _, out = run(proc(ct="application/jsonlines", strategy="SingleRecord", assemble="None"), b"1\n2\n",
                 lambda p: b'{"a":1}')
    assert out == b'{"a":1}{"a":1}'


def test_responses_keep_input_order():
    obj = dp.prepare("o", b"1\n2\n3\n", proc(strategy="SingleRecord"))
    assert dp.assemble(obj, [b"r1", b"r2", b"r3"], proc(strategy="SingleRecord")) == b"r1\nr2\nr3\n"


# ------------------------------------------------------------ JSON and JSON Lines
def test_jsonl_join_adds_sagemaker_output():
    # DG-DP: {"key":1} joined with {"label":1} -> {"key":1,"SageMakerOutput":{"label":1}}
    _, out = run(proc(ct="application/jsonlines", join=True), b'{"key":1}\n', lambda p: b'{"label":1}\n')
    assert out == b'{"SageMakerOutput":{"label":1},"key":1}\n'


def test_json_join_key_order_setting():
    p = proc(ct="application/jsonlines", join=True, json_sort_keys=False)
    _, out = run(p, b'{"key":1}\n', lambda q: b'{"label":1}\n')
    assert out == b'{"key":1,"SageMakerOutput":{"label":1}}\n'


def test_non_object_input_is_wrapped_as_sagemaker_input():
    _, out = run(proc(ct="application/jsonlines", join=True), b"[1,2,3]\n", lambda p: b"6\n")
    assert json.loads(out) == {"SageMakerInput": [1, 2, 3], "SageMakerOutput": 6}


def test_sagemaker_output_in_the_input_is_overwritten():
    _, out = run(proc(ct="application/jsonlines", join=True), b'{"SageMakerOutput":0}\n', lambda p: b"1\n")
    assert out == b'{"SageMakerOutput":1}\n'


def test_json_output_filter_keeps_named_attributes():
    p = proc(ct="application/jsonlines", join=True, out="$['id','SageMakerOutput']")
    _, out = run(p, b'{"id":"a","features":[1,2]}\n', lambda q: b'{"label":3}\n')
    assert out == b'{"SageMakerOutput":{"label":3},"id":"a"}\n'


def test_json_input_filter_sends_the_selected_part_compactly():
    obj = dp.prepare("o", b'{"id": "a", "features": [1, 2]}\n', proc(ct="application/jsonlines", inp="$.features"))
    assert obj.batches[0].payload == b"[1,2]\n"


def test_application_json_with_split_none_is_one_document():
    p = proc(ct="application/json", split="None", assemble="None", join=True)
    _, out = run(p, b'{"features": [1, 2]}', lambda q: b'{"sum": 3}')
    assert out == b'{"SageMakerOutput":{"sum":3},"features":[1,2]}'


def test_output_filter_single_key_without_join_returns_the_value():
    p = proc(ct="application/json", split="None", assemble="None", out="$['class']")
    _, out = run(p, b"[[1]]", lambda q: b'{"class": {"0": "a"}}')
    assert out == b'{"0":"a"}'


def test_data_processing_needs_a_supported_content_type():
    with pytest.raises(DataError, match="cannot be filtered or joined"):
        dp.prepare("o", b"x\n", proc(ct="application/x-npy", join=True))


def test_media_type_normalises_parameters_and_aliases():
    assert dp.media_type("text/csv; charset=utf-8") == "text/csv"
    assert dp.media_type("application/jsonl") == dp.JSONL


def test_settings_from_dict_rejects_unknown_names():
    assert dp.DataPlaneSettings.from_dict({"slice_end_inclusive": False}).slice_end_inclusive is False
    with pytest.raises(ConfigError, match="unknown data plane setting"):
        dp.DataPlaneSettings.from_dict({"nope": 1})


def test_settings_from_dict_rejects_values_outside_their_choices():
    assert dp.DataPlaneSettings.from_dict({"slice_past_end": "clip"}).slice_past_end == "clip"
    with pytest.raises(ConfigError, match="slice_past_end='clamp': expected one of 'error', 'clip'"):
        dp.DataPlaneSettings.from_dict({"slice_past_end": "clamp"})
    with pytest.raises(ConfigError, match="json_sort_keys='yes'"):
        dp.DataPlaneSettings.from_dict({"json_sort_keys": "yes"})


def test_slice_setting_reaches_the_filters():
    obj = dp.prepare("o", b"0,1,2,3\n", proc(inp="$[1:2]", slice_end_inclusive=False))
    assert obj.batches[0].payload == b"1\n"
    obj = dp.prepare("o", b"0,1,2,3\n", proc(inp="$[1:2]"))
    assert obj.batches[0].payload == b"1,2\n"


def test_unquoted_field_with_leading_space_is_quoted_on_output():
    _, out = run(proc(join=True), b"x, y\n", lambda q: b"1\n")
    assert out == b'x," y",1\n'
    _, out = run(proc(join=True, csv_quoting="verbatim"), b"x, y\n", lambda q: b"1\n")
    assert out == b"x, y,1\n"


def _with_capture(p):
    import dataclasses
    return dataclasses.replace(p, inference_time="2023-01-21T01:29:04Z")


def test_generate_inference_id_csv_adds_id_then_time_columns():
    p = _with_capture(proc(join=True))
    _, out = run(p, b"1,2\n3,4\n", lambda q: b"a\nb\n")
    rows = [r.split(",") for r in out.decode().splitlines()]
    assert [r[:3] for r in rows] == [["1", "2", "a"], ["3", "4", "b"]]
    assert all(r[4] == "2023-01-21T01:29:04Z" and len(r[3]) == 36 for r in rows)
    assert rows[0][3] != rows[1][3]


def test_generate_inference_id_jsonl_adds_sorted_keys():
    p = _with_capture(proc(ct="application/jsonlines", join=True))
    _, out = run(p, b'{"features":[1]}\n', lambda q: b"1\n")
    d = json.loads(out)
    assert list(d) == ["SageMakerInferenceId", "SageMakerInferenceTime", "SageMakerOutput", "features"]
    assert d["SageMakerInferenceTime"] == "2023-01-21T01:29:04Z"


def test_generate_inference_id_comes_from_the_spec():
    spec = {"TransformInput": {"ContentType": "text/csv"}, "TransformOutput": {},
            "DataCaptureConfig": {"DestinationS3Uri": "s3://b/c", "GenerateInferenceId": True}}
    assert dp.Processing.from_spec(spec, "MultiRecord", 6, job_start="T").inference_time == "T"
    spec["DataCaptureConfig"]["GenerateInferenceId"] = False
    assert dp.Processing.from_spec(spec, "MultiRecord", 6, job_start="T").inference_time is None


# ------------------------------------------------------------ divergences (batch_transform/README.md)
def test_output_filter_without_join_filters_one_document_for_a_csv_mini_batch():
    # Divergence 1: AWS's tabular example (OutputFilter $['class'], no join) answers a
    # whole CSV mini-batch with one JSON document; the service filters that document.
    p = proc(accept="application/json", out="$['class']")
    _, out = run(p, b"1,2\n3,4\n5,6\n", lambda q: b'{"class": {"0": "a", "1": "b", "2": "c"}}')
    assert out == b'{"0":"a","1":"b","2":"c"}\n'


def test_output_filter_without_join_filters_each_line_of_a_csv_answer():
    _, out = run(proc(out="$[0]"), b"1\n2\n3\n", lambda q: b"x,1\n")  # one line for three records
    assert out == b"x\n"


@pytest.mark.parametrize("data", [b"id1,1,2\r\nid2,3,4\r\n", b"id1,1,2\nid2,3,4"])
def test_split_none_with_a_join_sends_the_object_bytes(data):
    # Divergence 8: no extra "\n", line endings kept.
    obj = dp.prepare("o", data, proc(split="None", join=True))
    assert [b.payload for b in obj.batches] == [data]
    assert obj.batches[0].count == 2


def test_split_none_with_an_input_filter_keeps_the_line_endings():
    obj = dp.prepare("o", b"id1,1,2\r\nid2,3,4", proc(split="None", inp="$[1:]"))
    assert [b.payload for b in obj.batches] == [b"1,2\r\n3,4"]


def test_csv_input_filter_sends_the_fields_source_text_by_default():
    # Divergence 10: `843786, 12.45` must not become `" 12.45"` on the way to the container.
    data = b'843786, 12.45,"a,b"\n'
    assert dp.prepare("o", data, proc(inp="$[1:]")).batches[0].payload == b' 12.45,"a,b"\n'
    reenc = dp.prepare("o", data, proc(inp="$[1:]", filtered_payload_text="reencode"))
    assert reenc.batches[0].payload == b'" 12.45","a,b"\n'


def test_json_input_filter_keeps_the_numbers_source_text_by_default():
    data = b'{"id": "a", "features": [1.50, 1e2, -0, 12345678901234567890]}\n'
    p = proc(ct="application/jsonlines", inp="$.features")
    assert dp.prepare("o", data, p).batches[0].payload == b"[1.50,1e2,-0,12345678901234567890]\n"
    reenc = dp.prepare("o", data, proc(ct="application/jsonlines", inp="$.features", filtered_payload_text="reencode"))
    assert reenc.batches[0].payload == b"[1.5,100.0,0,12345678901234567890]\n"


def test_json_join_output_still_carries_the_input_values():
    p = proc(ct="application/jsonlines", inp="$.features", join=True)
    _, out = run(p, b'{"id": "a", "features": [1.50, 2]}\n', lambda q: b"3\n")
    assert json.loads(out) == {"id": "a", "features": [1.5, 2], "SageMakerOutput": 3}


def test_no_input_filter_passes_each_record_s_bytes_through():
    data = b'{"b": 1.0e2, "a": "\\u00e9"}\n'
    p = proc(ct="application/jsonlines", join=True)
    assert dp.prepare("o", data, p).batches[0].payload == data
    csv = b'x, 1,"q"\n'
    assert dp.prepare("o", csv, proc(join=True)).batches[0].payload == csv


# ------------------------------------------------------------ CSV rows cut by column positions
_OBJECTS = [
    b"id1,1,2,3\nid2,4,5,6\n",                       # the nightly's shape
    b"id1,1,2,3\r\nid2,4,5,6\r\nid3,7,8,9",         # CRLF, no final newline
    b"a,b\nc\n\nd,e,f,g\n",                          # rows of several lengths and an empty one
    b"x, y,z\nu,\\.,v\nw,\tt,s\n",                   # fields that need quotes when re-encoded
    "é,ü,ß\nα,β,γ\n".encode(),                       # multibyte UTF-8
    b'q,"a,b",c\nr,s,t\n',                           # a quoted field: the per-record path
    b"ok,1\nbad\xff,2\n",                            # not UTF-8: the per-record path names the line
    b"x\\\n.y\n",                                      # `\.` across two lines once assembled without "\n"
]
_FILTERS = [("$", "$"), ("$[1:]", "$[0,-3:]"), ("$[1:]", "$"), ("$[0,2]", "$[-1]"), ("$[*]", "$[1:2]"),
            ("$[1]", "$[0,1]"), ("$[5:]", "$"), ("$", "$[9]"), ("$[0:2, 3:]", "$"), ("$[0][0]", "$"),
            ("$", "$[-1,0]"), ("$", "$[0]"), ("$[0]", "$[:1]"), ("$", "$[2:]")]


def _outcome(p, data):
    try:
        obj, out = run(p, data, lambda payload: b"".join(b"7, 8\n" if b"\t" in ln else b"7,8\n"
                                                         for ln in payload.splitlines()))
        return [b.payload for b in obj.batches], [obj.record(i) for i in range(len(obj.records or []))], out
    except DataError as e:
        return str(e)


@pytest.mark.parametrize("assemble", ["Line", "None"])
@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("past_end", ["error", "clip"])
@pytest.mark.parametrize("inp, out", _FILTERS)
def test_csv_rows_cut_by_positions_match_the_per_record_path(inp, out, past_end, inclusive, assemble, monkeypatch):
    """prepare/assemble's CSV path for unquoted objects (positions found once per row length)
    gives the requests, records, output and errors of the per-record path it stands in for."""
    p = proc(inp=inp, out=out, join=True, mb=1, slice_past_end=past_end, slice_end_inclusive=inclusive,
             assemble=assemble)
    fast = [_outcome(p, data) for data in _OBJECTS]
    if (inp, out) == ("$[1:]", "$[0,-3:]"):
        assert dp.prepare("o", _OBJECTS[0], p).plain_csv, "the nightly's objects take the positions path"
    monkeypatch.setattr(dp, "_prepare_plain_csv", lambda *a: None)
    monkeypatch.setattr(dp, "_join_plain_csv", lambda *a: None)
    assert fast == [_outcome(p, data) for data in _OBJECTS]
