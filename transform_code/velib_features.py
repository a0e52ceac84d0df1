"""The model's input and output columns: the contract between windows, transform inputs and handlers.

Ships inside model.tar.gz (code/), so it imports nothing outside the standard library.

Contract versions (config.json `feature_contract` of a model; windows always send the current one):
- 1: `is_weekend` (Saturday or Sunday only). A public holiday looked like a working day.
- 2: `non_working_day` in the same position (Saturday, Sunday or a French public holiday).
  Same column count and order, so a CSV line does not show the change: a model of contract 1
  is refused at load (ModelLoadError naming both) rather than fed a flag it misreads.
- 3: `non_working_next_day` after `non_working_day` (the local day after the origin's), so a
  model forecasting up to 24 h ahead knows the calendar of every target hour; the output is a
  predictive distribution per horizon 1..MAX_HORIZON (OUTPUT_COLUMNS), not three point values.
- 4: the same features; each horizon's output adds `fallback`, the code of what served it
  (FALLBACKS), so a forecast the model did not make says so in the published row.
- 5: `state_age_min` and `stale` after `lon`. The state at a whole hour is the latest observation
  at or before it, so the state at the origin is minutes to hours old: `state_age_min` is the
  whole minutes from its observed_at to the origin (the model forecasts from a state of that age);
  `stale` is 1 when the window stage found it older than its max_staleness, and the model then
  serves the station's profile (`fallback` "profile") instead of forecasting from it. Then
  `clock_change_h` and `clock_change_horizon`: the change of the Europe/Paris UTC offset within the
  next MAX_HORIZON hours (+1 in spring, -1 in autumn, 0 none) and the first horizon on the new
  offset, so the local hour of every target is known on the two nights the clocks change. A model
  of contract 4 is refused at load (its CSV lines have 32 columns, these 36).

Output of one record: for each horizon h = 1..MAX_HORIZON (horizon-major), the six
OUTPUT_QUANTITIES: `bikes` (the point forecast, the rounded mean), `bikes_p10`, `bikes_p50`,
`bikes_p90` (integers in [0, capacity], ordered), `p_empty` (probability of 0 bikes) and
`p_full` (probability of 0 free docks), both in [0, 1], and `fallback`: 0 when the model
served the horizon, else the code of the fallback that did (FALLBACKS).
"""

import datetime as dt

HISTORY_LEN = 24
FEATURE_CONTRACT = 5
NON_WORKING = "non_working_day"
NON_WORKING_NEXT = "non_working_next_day"
CLOCK_CHANGE = "clock_change_h"  # the Paris UTC offset's change within MAX_HORIZON hours: +1, -1 or 0
CLOCK_CHANGE_AT = "clock_change_horizon"  # the first horizon whose target is on the new offset (0: none)
TIME_FEATURES = ["hour", "day_of_week", NON_WORKING, NON_WORKING_NEXT, CLOCK_CHANGE, CLOCK_CHANGE_AT]
STATE_AGE = "state_age_min"  # whole minutes from the observed_at of the state at the origin to the origin
STALE = "stale"  # 1: that state is older than the window stage's max_staleness (the profile serves it)
STATIC_FEATURES = [*TIME_FEATURES[:4], "capacity", "station_index", "lat", "lon", STATE_AGE, STALE,
                   CLOCK_CHANGE, CLOCK_CHANGE_AT]
CONTRACT_5_COLUMNS = (STATE_AGE, STALE, CLOCK_CHANGE, CLOCK_CHANGE_AT)  # what contract 5 added
# What contract 2 renamed: a JSON record or a model config holding it was made for contract 1.
LEGACY_COLUMNS = {"is_weekend": NON_WORKING}
# Oldest first: bikes_lag23 ... bikes_lag0 (the value at the origin t).
HISTORY_COLUMNS = [f"bikes_lag{HISTORY_LEN - 1 - i}" for i in range(HISTORY_LEN)]
FEATURE_COLUMNS = HISTORY_COLUMNS + STATIC_FEATURES
MAX_HORIZON = 24
OUTPUT_QUANTITIES = ("bikes", "bikes_p10", "bikes_p50", "bikes_p90", "p_empty", "p_full", "fallback")
PROBABILITIES = ("p_empty", "p_full")  # in [0, 1]
BIKES = ("bikes", "bikes_p10", "bikes_p50", "bikes_p90")  # whole bikes in [0, capacity]
# What served a horizon, by its `fallback` code: the published row's `fallback` column holds the name
# ("" for the model itself). `persistence`: the count at the origin, served where the model has not
# learnt the target's day type (a model trained without any non-working day, at a target on one).
# `profile`: the station's profile at the target's hour and day type times its capacity, with the
# climatology's p_empty and p_full, served for a stale station (STALE): an open station whose last
# state is too old to forecast from still gets a row.
FALLBACKS = ("", "persistence", "profile")
MODEL, PERSISTENCE, PROFILE = range(len(FALLBACKS))
OUTPUT_COLUMNS = [f"{q}_h{h}" for h in range(1, MAX_HORIZON + 1) for q in OUTPUT_QUANTITIES]
# Known stations are 1..N in station_mappings.json; 0 is kept for stations the model never saw.
UNKNOWN_STATION_INDEX = 0

# Positions in a FEATURE_COLUMNS row, so handlers and training index the same way.
COL = {name: i for i, name in enumerate(FEATURE_COLUMNS)}
HISTORY_KEY = "history"  # the JSON Lines `features` object holds the 24 values under this key


def french_public_holidays(year: int) -> set:
    """Metropolitan France's 11 public holidays (jours fériés) of `year`, as datetime.date.

    Easter-based ones from the anonymous Gregorian computus (Meeus/Jones/Butcher).
    """
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l_) // 433
    month = (h + l_ - 7 * m + 90) // 25
    easter = dt.date(year, month, (h + l_ - 7 * m + 33 * month + 19) % 32)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    return {dt.date(year, mo, da) for mo, da in fixed} | {
        easter + dt.timedelta(days=n) for n in (1, 39, 50)  # Easter Monday, Ascension, Whit Monday
    }


def is_non_working_day(local_date) -> bool:
    """Saturday, Sunday or a French public holiday (a local Europe/Paris date).

    Bridge days (a Friday after Ascension, a Monday before a Tuesday holiday) are not flagged:
    they are working days for most employers, a binary flag would put them with Sundays, and
    the bundled data holds none to learn or check a third class from.
    """
    return local_date.weekday() >= 5 or local_date in french_public_holidays(local_date.year)


def time_features(local: dt.datetime) -> tuple[int, int, int, int, int, int]:
    """TIME_FEATURES of an origin given as an aware Europe/Paris datetime: hour, day_of_week
    (Monday = 0), non_working_day, non_working_next_day, and the clocks' change within the next
    MAX_HORIZON hours (CLOCK_CHANGE, CLOCK_CHANGE_AT). The one definition windows and training use."""
    day = local.date()
    change = at = 0
    utc = local.astimezone(dt.timezone.utc)  # noqa: UP017 (also runs on the image's Python)
    offset = local.utcoffset() or dt.timedelta(0)
    for h in range(1, MAX_HORIZON + 1):
        later = (utc + dt.timedelta(hours=h)).astimezone(local.tzinfo).utcoffset() or dt.timedelta(0)
        if later != offset:
            change, at = round((later - offset).total_seconds() / 3600), h
            break
    return (local.hour, local.weekday(), int(is_non_working_day(day)),
            int(is_non_working_day(day + dt.timedelta(days=1))), change, at)


def state_age_minutes(age_s):
    """STATE_AGE of states `age_s` whole seconds old at their hour (an int or an integer array): whole
    minutes, rounded down. The one definition windows and training use."""
    return age_s // 60


def contract_problem(feature_columns, output_columns=OUTPUT_COLUMNS):
    """None when a model's feature_columns (and output_columns, from its config.json) are this
    code's; else what is wrong and the fix."""
    if feature_columns == FEATURE_COLUMNS:
        if list(output_columns or []) == OUTPUT_COLUMNS:
            return None
        return (f"the model was packaged for other output columns ({len(output_columns or [])}, this code's "
                f"contract {FEATURE_CONTRACT} has {len(OUTPUT_COLUMNS)}: each horizon's fallback code); "
                "retrain it with `velibcast train`")
    legacy = [c for c in (feature_columns or []) if c in LEGACY_COLUMNS]
    if legacy:
        return (f"the model was trained on feature contract 1 ({', '.join(legacy)}: weekends only); this code "
                f"sends contract {FEATURE_CONTRACT} ({NON_WORKING}: weekends and French public holidays). "
                "Retrain it with `velibcast train` (or run it with the velibcast release it was trained with)")
    if list(feature_columns or []) == [c for c in FEATURE_COLUMNS if c not in CONTRACT_5_COLUMNS]:
        return (f"the model was trained on feature contract 4 (without {', '.join(CONTRACT_5_COLUMNS[:-1])} and "
                f"{CONTRACT_5_COLUMNS[-1]}); this code sends contract {FEATURE_CONTRACT} (the age of the state at "
                "the origin, whether it is stale, and the clocks' change ahead). "
                "Retrain it with `velibcast train` (or run it with the velibcast release it was trained with)")
    return ("the model's feature_columns do not match this code's FEATURE_COLUMNS; "
            "package the model with the transform_code it was trained with")
