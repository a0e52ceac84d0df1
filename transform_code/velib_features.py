"""The model's input and output columns: the contract between windows, transform inputs and handlers.

Ships inside model.tar.gz (code/), so it imports nothing outside the standard library.
"""

import datetime as dt

HISTORY_LEN = 24
STATIC_FEATURES = ["hour", "day_of_week", "is_weekend", "capacity", "station_index", "lat", "lon"]
# Oldest first: bikes_lag23 ... bikes_lag0 (the value at the origin t).
HISTORY_COLUMNS = [f"bikes_lag{HISTORY_LEN - 1 - i}" for i in range(HISTORY_LEN)]
FEATURE_COLUMNS = HISTORY_COLUMNS + STATIC_FEATURES
OUTPUT_COLUMNS = ["bikes_h1", "bikes_h2", "bikes_h3"]
HORIZONS = len(OUTPUT_COLUMNS)
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
    """Saturday, Sunday or a French public holiday (a local Europe/Paris date)."""
    return local_date.weekday() >= 5 or local_date in french_public_holidays(local_date.year)
