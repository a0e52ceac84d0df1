"""The four handlers on real payloads of each content type, and each kind of bad input."""

import json
import math

import numpy as np
import pytest

from velibcast.transform_code import inference, velib_codec
from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_errors import InferenceError

_N_OUT = len(F.OUTPUT_COLUMNS)
_PROBABILITY = [c.rsplit("_h", 1)[0] in F.PROBABILITIES for c in F.OUTPUT_COLUMNS]


def run(model, body, content_type, accept=None):
    data = inference.input_fn(body, content_type)
    return inference.output_fn(inference.predict_fn(data, model), accept or content_type)


def csv_rows(body):
    """A CSV response's values: ints for bikes, floats for probabilities, as a reader would take them."""
    rows = []
    for ln in body.splitlines():
        fields = ln.split(",")
        assert len(fields) == _N_OUT
        rows.append([float(v) if p else int(v) for v, p in zip(fields, _PROBABILITY)])
    return rows


def check_quantities(rows, feats):
    """Per record and horizon: bikes in [0, capacity], p10 <= p50 <= p90, probabilities in [0, 1]
    written with at most 3 decimals."""
    assert len(rows) == len(feats)
    for r, f in zip(rows, feats):
        assert len(r) == _N_OUT
        for v, p in zip(r, _PROBABILITY):
            if p:
                assert isinstance(v, float) and 0.0 <= v <= 1.0 and len(repr(v).split(".")[1]) <= 3, v
            else:
                assert isinstance(v, int) and 0 <= v <= f["capacity"], (v, f["capacity"])
        q = np.array(r, dtype=np.float64).reshape(F.MAX_HORIZON, len(F.OUTPUT_QUANTITIES))
        p10, p50, p90 = (q[:, F.OUTPUT_QUANTITIES.index(n)] for n in ("bikes_p10", "bikes_p50", "bikes_p90"))
        assert (p10 <= p50).all() and (p50 <= p90).all()


def json_rows(objs):
    return [[o[c] for c in F.OUTPUT_COLUMNS] for o in objs]


def test_csv_batch_gives_one_line_per_record(model, features, to_csv):
    feats = features(50)
    body, ct = run(model, to_csv(feats).encode(), "text/csv")
    assert ct == "text/csv"
    assert body.endswith("\n") and not body.endswith("\n\n")
    check_quantities(csv_rows(body), feats)


def test_csv_and_json_carry_the_same_values(model, features, to_csv):
    """The codec's round trip: a CSV line read back equals the JSON object keyed by OUTPUT_COLUMNS."""
    feats = features(30, seed=9)
    csv_body, _ = run(model, to_csv(feats), "text/csv")
    json_body, _ = run(model, to_csv(feats), "text/csv", "application/json")
    assert csv_rows(csv_body) == json_rows(json.loads(json_body))
    assert list(json.loads(json_body)[0]) == [*F.OUTPUT_COLUMNS, "unknown_station"]


def test_csv_accepts_str_body_crlf_and_charset(model, features, to_csv):
    feats = features(3)
    ref, _ = run(model, to_csv(feats), "text/csv")
    crlf, _ = run(model, to_csv(feats).replace("\n", "\r\n").encode(), "text/csv; charset=utf-8")
    assert crlf == ref


def test_clamps_to_capacity_and_zero(model, features, to_csv):
    feats = features(20, seed=5)
    for f in feats[:10]:
        f["history"] = [f["capacity"]] * 24
    for f in feats[10:]:
        f["history"] = [0] * 24
    body, _ = run(model, to_csv(feats), "text/csv")
    check_quantities(csv_rows(body), feats)


def test_adversarial_records_keep_every_range_and_order(model, features, to_csv):
    """Capacity 0 and 1, counts above capacity, every hour and day flag: still in range and ordered."""
    feats = features(96, seed=11)
    for i, f in enumerate(feats):
        f["capacity"] = [0, 1, 2, 200][i % 4]
        f["history"] = [[0, 200, 1, 3][(i + k) % 4] for k in range(24)]
        f["hour"], f["non_working_day"], f["non_working_next_day"] = i % 24, i % 2, (i // 2) % 2
    check_quantities(csv_rows(run(model, to_csv(feats), "text/csv")[0]), feats)


def test_predicted_in_blocks_of_rows_with_the_same_answer(model, features, to_csv, monkeypatch):
    calls = []
    original = model.predict
    monkeypatch.setattr(model, "predict", lambda x: calls.append(len(x)) or original(x))
    whole, _ = run(model, to_csv(features(200)), "text/csv")
    assert calls == [200]
    calls.clear()
    monkeypatch.setattr(inference, "FORWARD_BLOCK_ROWS", 64)
    assert run(model, to_csv(features(200)), "text/csv")[0] == whole
    assert calls == [64, 64, 64, 8]


def test_jsonlines_features_and_full_records_agree_with_csv(model, features, to_csv):
    feats = features(10, seed=1)
    csv_body, _ = run(model, to_csv(feats), "text/csv")
    expected = csv_rows(csv_body)

    body, ct = run(model, "".join(json.dumps(f) + "\n" for f in feats).encode(), "application/jsonlines")
    assert ct == "application/jsonlines"
    objs = [json.loads(ln) for ln in body.splitlines()]
    assert json_rows(objs) == expected
    assert "record_id" not in objs[0]

    full = [{"record_id": f"S{i}@2022-05-26T10:00Z", "station_code": f"S{i}", "origin_ts": "2022-05-26T10:00:00Z",
             "features": f} for i, f in enumerate(feats)]
    body, _ = run(model, "\n".join(json.dumps(r) for r in full), "application/jsonlines")
    objs = [json.loads(ln) for ln in body.splitlines()]
    assert [o["record_id"] for o in objs] == [r["record_id"] for r in full]
    assert json_rows(objs) == expected


def test_json_object_and_list(model, features):
    feats = features(4, seed=2)
    one, ct = run(model, json.dumps(feats[0]), "application/json")
    assert ct == "application/json"
    assert isinstance(json.loads(one), dict)
    many, _ = run(model, json.dumps(feats), "application/json")
    many = json.loads(many)
    assert isinstance(many, list) and len(many) == 4 and many[0] == json.loads(one)


@pytest.mark.parametrize("accept, expected", [
    ("application/json", "application/json"),
    ("application/jsonlines", "application/jsonlines"),
    ("text/csv", "text/csv"),
    ("*/*", "text/csv"),
    ("application/xml, text/csv;q=0.5", "text/csv"),
])
def test_accept_picks_response_type(model, features, to_csv, accept, expected):
    _, ct = run(model, to_csv(features(2)), "text/csv", accept)
    assert ct == expected


def test_unknown_station_uses_reserved_index_and_is_flagged(model, features):
    feats = features(2, seed=4)
    feats[1]["station_index"] = 0
    objs = json.loads(run(model, json.dumps(feats), "application/json")[0])
    assert [o["unknown_station"] for o in objs] == [False, True]


def error_of(model, body, content_type, accept=None):
    with pytest.raises(InferenceError) as info:
        run(model, body, content_type, accept)
    return info.value


@pytest.mark.parametrize("body", [b"", b"\n", "  \n"])
def test_empty_payload_is_400(model, body):
    e = error_of(model, body, "text/csv")
    assert e.status_code == 400 and "empty" in e.message


def test_non_utf8_is_400_naming_line(model, features, to_csv):
    body = to_csv(features(3)).encode() + b"1,2,\xff\n"
    e = error_of(model, body, "application/jsonlines")
    assert e.status_code == 400 and "line 4" in e.message and "UTF-8" in e.message


def test_nan_is_400_naming_line_and_field(model, features, to_csv):
    lines = to_csv(features(3)).splitlines()
    cols = lines[1].split(",")
    cols[5] = "nan"
    lines[1] = ",".join(cols)
    e = error_of(model, "\n".join(lines), "text/csv")
    assert e.status_code == 400
    assert "line 2, field bikes_lag18" in e.message and "NaN" in e.message


def test_json_null_and_nan_are_400(model, features):
    feats = features(2)
    feats[1]["history"][3] = None
    e = error_of(model, json.dumps(feats), "application/json")
    assert "record 2, field history[3]" in e.message
    feats = features(2)
    feats[0]["lat"] = math.nan
    e = error_of(model, "\n".join(json.dumps(f) for f in feats), "application/jsonlines")
    assert "line 1, field lat" in e.message


def test_wrong_column_count_is_400(model, features, to_csv):
    lines = to_csv(features(3)).splitlines()
    lines[2] = "abc," + lines[2]
    e = error_of(model, "\n".join(lines), "text/csv")
    n = len(F.FEATURE_COLUMNS)
    assert e.status_code == 400 and f"line 3: {n + 1} columns, expected {n}" in e.message


def test_not_a_number_is_400(model, features, to_csv):
    lines = to_csv(features(2)).splitlines()
    lines[0] = lines[0].replace(",", ",x", 1)
    e = error_of(model, "\n".join(lines), "text/csv")
    assert "line 1, field bikes_lag22" in e.message and "not a number" in e.message


@pytest.mark.parametrize("field, value, text", [
    ("hour", 24, "hour: is 24; must be an integer in [0, 23]"),
    ("day_of_week", 1.5, "day_of_week: is 1.5"),
    ("non_working_next_day", 2, "non_working_next_day: is 2; must be an integer in [0, 1]"),
    ("capacity", -1, "capacity: is -1"),
    ("station_index", 21, "station_index: is 21; must be an integer in [0, 20]; use 0"),
    ("lat", 91, "lat: is 91"),
    # implausible values get a 400 naming the field (the bounds of velibcast/constants.py)
    ("lat", 1000, "lat: is 1000; must be in [48.6, 49.1] degrees (the Vélib' service area)"),
    ("lon", -2.35, "lon: is -2.35; must be in [2.0, 2.7]"),
    ("capacity", 2 ** 40, f"capacity: is {2 ** 40}; must be an integer in [0, 200]"),
    ("hour", 10 ** 30, "hour: is 1000000000000000019884624838656; must be an integer in [0, 23]"),
    ("station_index", 1e300, "station_index: is "),
    ("capacity", 10 ** 400, "capacity: 10000000000000000000... (401 digits) is out of range"),
])
def test_out_of_range_fields_are_400(model, features, field, value, text):
    feats = features(3)
    feats[2][field] = value
    e = error_of(model, json.dumps(feats), "application/json")
    assert e.status_code == 400 and f"record 3, field {text}" in e.message


def test_negative_history_and_missing_fields(model, features):
    feats = features(1)
    feats[0]["history"][0] = -2
    assert "history[0]: is -2" in error_of(model, json.dumps(feats), "application/json").message
    feats = features(1)
    del feats[0]["capacity"]
    assert "record 1, field capacity: missing" in error_of(model, json.dumps(feats), "application/json").message
    feats = features(1)
    feats[0]["history"] = feats[0]["history"][:23]
    assert "got 23 values" in error_of(model, json.dumps(feats), "application/json").message


def test_implausible_history_is_400_naming_the_value(model, features, to_csv):
    feats = features(2)
    feats[1]["history"][5] = 1e9
    e = error_of(model, to_csv(feats), "text/csv")
    assert e.status_code == 400 and "line 2, field bikes_lag18: is 1000000000; a station holds at most 200 bikes" in e.message


@pytest.mark.parametrize("ct, body", [
    ("application/json", "[" * 100_000 + "]" * 100_000),
    ("application/jsonlines", '{"history": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
    ("application/json", '{"features": ' + '{"a":' * 50_000 + "1" + "}" * 50_001),
])
def test_deeply_nested_json_is_400_not_500(model, ct, body):
    """A 500 is retried by the runtime and fails the job; the body will never parse."""
    e = error_of(model, body, ct)
    assert e.status_code == 400 and "nested too deeply" in e.message


def test_server_bounds_are_the_pipeline_constants():
    """velib_codec.py cannot import velibcast (it ships alone as code/): its copy must stay equal."""
    from velibcast import constants as C
    from velibcast.transform_code import velib_codec

    for name in ("SERVICE_AREA_LAT", "SERVICE_AREA_LON", "STATION_CAPACITY_MAX", "STATION_COUNT_MAX"):
        assert getattr(velib_codec, name) == getattr(C, name), name


def test_bad_json_is_400(model):
    e = error_of(model, '{"history": [1,2', "application/json")
    assert e.status_code == 400 and "not valid JSON" in e.message
    e = error_of(model, '{"a": 1}\n[1]\n', "application/jsonlines")
    assert "line 1, field history" in e.message and "line 2: expected a JSON object" in e.message


def test_unsupported_types(model, features, to_csv):
    assert error_of(model, "x", "application/x-npy").status_code == 415
    assert error_of(model, to_csv(features(1)), "text/csv", "application/xml").status_code == 406


def test_errors_carry_the_toolkit_status(model):
    from sagemaker_inference.errors import BaseInferenceToolkitError

    e = error_of(model, b"", "text/csv")
    assert isinstance(e, BaseInferenceToolkitError)
    assert (e.status_code, e.phrase) == (400, "Bad Request")


def test_model_fn_refuses_mismatched_artifacts(model_dir, tmp_path):
    import shutil

    from velibcast.transform_code.velib_errors import ModelLoadError

    bad = tmp_path / "m"
    shutil.copytree(model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["feature_columns"] = cfg["feature_columns"][::-1]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="feature_columns"):
        inference.model_fn(str(bad))
    shutil.copy(model_dir / "config.json", bad / "config.json")
    for name in ("trees.json", "profiles.json", "distribution.json"):
        (bad / name).rename(bad / "kept")
        with pytest.raises(ModelLoadError, match=f"{name}: missing"):
            inference.model_fn(str(bad))
        (bad / "kept").rename(bad / name)
    spec = json.loads((bad / "distribution.json").read_text())
    spec["residuals"][0][0] = spec["residuals"][0][0][::-1]  # levels no longer ascending
    (bad / "distribution.json").write_text(json.dumps(spec))
    with pytest.raises(ModelLoadError, match="distribution.json"):
        inference.model_fn(str(bad))


def test_model_fn_refuses_a_contract_1_model_naming_both_contracts(model_dir, tmp_path):
    import shutil

    from velibcast.transform_code.velib_errors import ModelLoadError

    old = tmp_path / "m"
    shutil.copytree(model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["feature_columns"] = [c if c != "non_working_day" else "is_weekend" for c in cfg["feature_columns"]]
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=rf"feature contract 1 .is_weekend.*contract {F.FEATURE_CONTRACT} "
                                             r".non_working_day.*Retrain"):
        inference.model_fn(str(old))


def test_a_contract_1_record_is_400_naming_the_renamed_field(model, features):
    f = features(2)
    f[1]["is_weekend"] = f[1].pop("non_working_day")
    body = "".join(json.dumps(x) + "\n" for x in f)
    e = error_of(model, body, "application/jsonlines")
    assert e.status_code == 400
    assert "line 2, field non_working_day: missing, but is_weekend is given" in e.message
    assert "velibcast windows" in e.message


def test_warmup_runs_the_whole_path_and_changes_no_prediction(model_dir, model, features, to_csv, monkeypatch):
    """model_warmup_fn (run once by the server before /ping is healthy) sends valid records
    through input_fn -> predict_fn -> output_fn, and the model answers the same afterwards."""
    body = to_csv(features(600, seed=7))
    before = run(model, body, "text/csv")
    seen, hooks = [], []
    original = model.predict
    monkeypatch.setattr(model, "predict", lambda x: seen.append(len(x)) or original(x))
    monkeypatch.setattr(inference, "predict_fn", lambda *a: hooks.append(a))
    inference.model_warmup_fn(str(model_dir), model)
    assert seen == [inference.FORWARD_BLOCK_ROWS] * 2
    assert hooks == [], "a module wrapping predict_fn (the fault tests count its calls) sees requests only"
    monkeypatch.undo()
    assert run(model, body, "text/csv") == before


@pytest.mark.parametrize("field", ["7", " 7", "7.0 ", "7e0", "+7", "7_0", "٧", "\t7"])
def test_csv_read_by_numpy_or_field_by_field_gives_the_same_records(features, to_csv, field, monkeypatch):
    """_parse_csv reads with np.loadtxt and falls back to float() field by field (which also
    accepts `7_0` and non-ASCII digits): same matrix either way."""
    lines = to_csv(features(5)).splitlines()
    lines[2] = ",".join([field] + lines[2].split(",")[1:])
    text = "\n".join(lines) + "\n"
    fast = velib_codec._parse_csv(text)

    def refuse(*a, **k):
        raise ValueError("field by field")
    monkeypatch.setattr(velib_codec.np, "loadtxt", refuse)
    assert np.array_equal(fast, velib_codec._parse_csv(text))


def test_model_fn_refuses_a_model_packaged_for_outputs_without_the_fallback_code(model_dir, tmp_path):
    import shutil

    from velibcast.transform_code.velib_errors import ModelLoadError

    old = tmp_path / "m"
    shutil.copytree(model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["output_columns"] = [c for c in cfg["output_columns"] if not c.startswith("fallback_")]  # contract 3's
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=rf"other output columns \({len(cfg['output_columns'])}, this code's "
                                             rf"contract {F.FEATURE_CONTRACT} has {_N_OUT}.*retrain"):
        inference.model_fn(str(old))


def test_each_horizon_names_what_served_it_persistence_where_training_saw_no_such_day(model_dir, tmp_path,
                                                                                      features, to_csv):
    """A model trained without any non-working day serves persistence at targets on one, and says so
    per record and horizon; a target on a working day is the model's (code 0)."""
    import shutil

    no_holiday = tmp_path / "m"
    shutil.copytree(model_dir, no_holiday)
    cfg = json.loads((no_holiday / "config.json").read_text())
    (no_holiday / "config.json").write_text(json.dumps(dict(cfg, persistence_on_non_working_days=True)))
    model = inference.model_fn(str(no_holiday))
    feats = features(30, seed=5)
    for f in feats:  # 21:00 on a working day before a holiday: T+1, T+2 h on it, T+3 h on from midnight
        f.update(hour=21, non_working_day=0, non_working_next_day=1)
    rows = np.array(csv_rows(run(model, to_csv(feats).encode(), "text/csv")[0]), dtype=np.float64)
    q = rows.reshape(len(feats), F.MAX_HORIZON, len(F.OUTPUT_QUANTITIES))
    code = q[:, :, F.OUTPUT_QUANTITIES.index("fallback")]
    assert (code[:, :2] == F.MODEL).all() and (code[:, 2:] == F.PERSISTENCE).all()
    assert F.FALLBACKS[F.PERSISTENCE] == "persistence" and F.FALLBACKS[F.MODEL] == ""
    now = np.array([f["history"][-1] for f in feats], dtype=np.float64)
    np.testing.assert_array_equal(q[:, 2:, F.OUTPUT_QUANTITIES.index("bikes")], np.repeat(now[:, None], 22, axis=1))
    assert (q[:, :2, F.OUTPUT_QUANTITIES.index("bikes")] != now[:, None]).any(), "the (random) trees move the rest"
    plain = np.array(csv_rows(run(inference.model_fn(str(model_dir)), to_csv(feats).encode(), "text/csv")[0]))
    assert (plain.reshape(q.shape)[:, :, F.OUTPUT_QUANTITIES.index("fallback")] == F.MODEL).all()


def test_model_fn_refuses_a_contract_4_model_naming_the_new_columns_and_the_retrain(model_dir, tmp_path):
    """A contract-4 model never saw the state's age nor the clocks: fed 36 columns, it would read the wrong ones."""
    import shutil

    from velibcast.transform_code.velib_errors import ModelLoadError

    old = tmp_path / "m"
    shutil.copytree(model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["feature_columns"] = [c for c in cfg["feature_columns"] if c not in F.CONTRACT_5_COLUMNS]
    assert len(cfg["feature_columns"]) == 32
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=rf"feature contract 4 .without {F.STATE_AGE}, {F.STALE}, {F.CLOCK_CHANGE} "
                                             rf"and {F.CLOCK_CHANGE_AT}.*contract {F.FEATURE_CONTRACT}.*"
                                             r"Retrain it with `velibcast train`"):
        inference.model_fn(str(old))


def test_a_stale_station_gets_its_profile_at_every_horizon_named_profile(model_dir, model, features, to_csv):
    """A window flagged stale (its state at t is older than the window stage's max_staleness) is served
    the station's profile at each target hour times capacity, the climatology's p_empty and p_full, and
    `fallback` says "profile" at every horizon; the fresh records beside it stay the model's."""
    from velibcast.transform_code import velib_gbm, velib_profile

    feats = features(40, seed=11)
    for f in feats[::2]:
        f.update(stale=1, state_age_min=400)
    rows = np.array(csv_rows(run(model, to_csv(feats).encode(), "text/csv")[0]), dtype=np.float64)
    q = rows.reshape(len(feats), F.MAX_HORIZON, len(F.OUTPUT_QUANTITIES))
    code = q[:, :, F.OUTPUT_QUANTITIES.index("fallback")]
    assert F.FALLBACKS[F.PROFILE] == "profile"
    assert (code[::2] == F.PROFILE).all() and (code[1::2] == F.MODEL).all()
    x = velib_codec.decode(to_csv(feats), "text/csv").x[::2]
    cfg = json.loads((model_dir / "config.json").read_text())
    profiles = velib_profile.load(str(model_dir), cfg["n_stations"])
    events = velib_profile.load_events(str(model_dir), cfg["n_stations"])
    cap = x[:, F.COL["capacity"]]
    for h in range(1, F.MAX_HORIZON + 1):
        hour, day = velib_gbm.target_calendar(x, h)
        station = x[:, F.COL["station_index"]]
        want = np.minimum(np.clip(np.round(profiles.lookup(station, day, hour) * cap), 0, None), cap)
        np.testing.assert_array_equal(q[::2, h - 1, F.OUTPUT_QUANTITIES.index("bikes")], want)
        for name in F.PROBABILITIES:
            np.testing.assert_allclose(q[::2, h - 1, F.OUTPUT_QUANTITIES.index(name)],
                                       np.round(events[name].lookup(station, day, hour), 3), atol=1e-9)
    last = np.array([f["history"][-1] for f in feats[::2]], dtype=np.float64)
    assert (q[::2, :, F.OUTPUT_QUANTITIES.index("bikes")] != last[:, None]).any(), "not persistence"
