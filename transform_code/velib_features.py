"""The model's input and output columns: the contract between windows, transform inputs and handlers.

Ships inside model.tar.gz (code/), so it imports nothing outside the standard library.
"""

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
