"""Every limit and default of velibcast, in one place.

Sections follow the pipeline. A value that mirrors the SageMaker service cites where it
comes from as "BTS §x": section x of docs/batch-transform-rules.md, which cites the public source.
"""

# ---------------------------------------------------------------- storage
S3_LIST_PAGE_SIZE = 1000            # ListObjectsV2 MaxKeys ceiling
S3_MAX_ATTEMPTS = 5                 # botocore "standard" retry mode attempts
FETCH_CONCURRENCY = 8               # snapshot GETs in flight
GUNZIP_AHEAD_MAX_BYTES = 1 << 20     # snapshots gunzipped in the fetch threads (see fetch_many)
TMP_PREFIX = "_tmp-"                # names pyarrow, Hive and Athena skip (storage adds a .tmp ending for globs)

# ---------------------------------------------------------------- snapshots and windows
SNAPSHOT_PREFIX = "velib/snapshots"
SNAPSHOT_KEY_TIME_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
MAX_STALENESS_HOURS = 3.0
LOCAL_TIMEZONE = "Europe/Paris"
# How far beyond an origin's history the snapshot listing reaches back: the oldest
# state a window needs may come from a capture up to max_staleness earlier.
LISTING_MARGIN_HOURS = 1
# A record observed before hour h can be captured later (the upstream refresh lags up to
# ~1 h in the 2022 series), so listing reaches this far past the last hour of a grid.
CAPTURE_LAG_MAX_HOURS = 2
# A target hour (the truth a sample is trained or scored on) is an observation only when the
# store holds a capture this close to it; otherwise the grid carries an older state forward
# and the "actual" equals persistence by construction (2025-09-13 16:00 and 18:00 Paris, hours
# without a capture: persistence MAE 0.000 on all 367 stations). 45 min keeps every hour of the
# 2022 series' drifting ~70-min captures that has one on either side (95 % of T+1h targets).
TARGET_CAPTURE_TOLERANCE_MINUTES = 45
SNAPSHOT_PARTITION_FORMAT = "date=%Y-%m-%d"   # the importer's layout; the flat seed layout is read too
SNAPSHOT_GZIP_LEVEL = 9
# A snapshot with fewer stations than this share of the median of its neighbours is partial.
PARTIAL_SNAPSHOT_RATIO = 0.97       # full snapshots of the 2022 series vary by < 0.5 %
PARTIAL_SNAPSHOT_NEIGHBOURS = 12
FETCH_ATTEMPTS = 4                  # per snapshot GET, on TransientError, on top of botocore's retries
FETCH_BACKOFF_S = 0.2               # doubled after each failed attempt
WINDOW_CHUNK_HOURS = 24             # origins assembled per grid: memory follows this, not the store
WINDOW_GRID_CELLS_MAX = 3_000_000    # stations x hours of one chunk's grid: ~100 MB of grid, and its snapshots
PARSE_BLOCK_BYTES = 1 << 20         # snapshot bytes decoded together: a 100,000-station snapshot never holds all its lines
INDEX_ROW_GROUP_ROWS = 1 << 16       # record index rows buffered per Parquet row group (datasets/assemble.py)
REPORT_MAX_EXAMPLES = 5             # example messages kept per reason in a skip report
STALE_DUEDATE_HOURS = 24            # data-quality: a station whose duedate is this old at capture

# ---------------------------------------------------------------- what a valid station record is
# One notion of validity: snapshot validation (datasets/snapshots.py) rejects what the model
# server would answer 400 to, so one record can never fail a whole shard. The server's copy
# lives in transform_code/velib_codec.py (it cannot import this module); a test keeps them equal.
# Service area: the Vélib' network spans lat 48.758..48.958, lon 2.166..2.538 (GBFS
# station_information 2022-05 and 2025-10); the box adds ~0.15 degrees (11-16 km) for growth.
SERVICE_AREA_LAT = (48.6, 49.1)
SERVICE_AREA_LON = (2.0, 2.7)
# Largest station: 78 docks (2025); bikes above capacity occur (82 at a 74-dock station, 2022).
# 200 leaves room for growth and stays far from int32 and float precision limits.
STATION_CAPACITY_MAX = 200
STATION_COUNT_MAX = 200             # bikes, docks, mechanical, ebike (history values on the server)
# Codes appear in record ids, CSV rows, JSON and Parquet: letters, digits, '_' and '-' only
# ("16107", "31024_relais"); a comma, quote or newline would split a CSV row.
STATION_CODE_PATTERN = r"[0-9A-Za-z_-]{1,32}"
# A duedate later than its capture is a clock error; the 2022 series is always >= 131 s earlier.
FUTURE_DUEDATE_TOLERANCE_S = 300

# The source formats `velibcast snapshots import` reads (datasets/importers.FORMATS has one
# function each). Named here so the command line is built without importing the importers
# (pandas, pyarrow): that import was most of the time `velibcast run` took to report a bad config.
SNAPSHOT_IMPORT_FORMATS = ("csv-series", "gbfs", "v21-json", "v1-json", "portal-csv", "bins-parquet")

# ---------------------------------------------------------------- transform inputs
RECORD_ID_COLUMN = "record_id"
TRANSFORM_SHARD_MAX_BYTES = 5 * 1024 * 1024
TRANSFORM_SHARD_COUNT = 1           # minimum shards: instance_count x MaxConcurrentTransforms
SHARD_WRITES_IN_FLIGHT = 2          # full transform shards written in the background (datasets/records.py)

# ---------------------------------------------------------------- Batch Transform (BTS §1)
JOB_NAME_MAX_LEN = 63
JOB_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
MODEL_NAME_PATTERN = r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$"
FILTER_MAX_LEN = 63
MAX_PAYLOAD_MB_MIN = 0
MAX_PAYLOAD_MB_MAX = 100
PAYLOAD_X_CONCURRENCY_MAX_MB = 100
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_MAX_CONCURRENT_TRANSFORMS = 1
DEFAULT_BATCH_STRATEGY = "MultiRecord"
INSTANCE_COUNT_MIN = 1
INSTANCE_COUNT_MAX = 100
INVOCATIONS_TIMEOUT_S_DEFAULT = 600
INVOCATIONS_TIMEOUT_S_MIN = 1
INVOCATIONS_TIMEOUT_S_MAX = 3600
INVOCATIONS_MAX_RETRIES_DEFAULT = 3
INVOCATIONS_MAX_RETRIES_MIN = 0
INVOCATIONS_MAX_RETRIES_MAX = 3
ENVIRONMENT_MAX_ENTRIES = 16
PING_TIMEOUT_S = 2.0
CONTAINER_START_TIMEOUT_S = 30 * 60.0  # BTS §4.2: the service pings a starting container for up to 30 minutes (amazon-sagemaker-examples#815)
MB = 1024 * 1024                    # BTS §2.4: 10^6 vs 2^20 is unknown; 2^20 is the stricter reading
SERVER_DEFAULT_PORT = 8080
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
HANDLER_PROGRAM_DEFAULT = "inference.py"  # SAGEMAKER_PROGRAM when unset, as the AWS PyTorch container
SERVER_MAX_PAYLOAD_MB_UNSET = 100   # body limit when SAGEMAKER_MAX_PAYLOAD_IN_MB is unset: the service maximum
SERVER_GRACEFUL_SHUTDOWN_S = 30.0   # in-flight requests get this long after SIGTERM
# A request body must arrive within this long of its headers: a client trickling bytes would
# otherwise hold a worker forever. 100 MB (the payload maximum) in 60 s needs 1.7 MB/s, far
# below a loopback or in-instance link. $VELIBCAST_SERVER_READ_TIMEOUT_S overrides it.
SERVER_READ_TIMEOUT_S = 60.0
SERVER_READ_TIMEOUT_ENV = "VELIBCAST_SERVER_READ_TIMEOUT_S"
SERVER_CONTAINER_HOST = "0.0.0.0"   # the container entry point: SageMaker reaches the server from outside
SERVER_LOCAL_HOST = "127.0.0.1"     # `velibcast serve`: this machine only, unless --host says otherwise
EXECUTION_PARAMETERS_ENV = "VELIBCAST_EXECUTION_PARAMETERS"  # JSON a server answers on /execution-parameters; unset -> 404
SERVER_START_POLL_S = 0.1           # local runtime: /ping poll interval while a server starts
INVOKE_RETRY_BACKOFF_S = 0.2        # local runtime: first pause between invocation retries (doubles)
LOCAL_ACCOUNT_ID = "000000000000"   # account in the local runtime's ARNs

# ---------------------------------------------------------------- SageMaker backend polling
POLL_INITIAL_S = 5.0
POLL_MAX_S = 60.0
POLL_DEADLINE_S = 6 * 3600.0
PYTORCH_INFERENCE_VERSION = "2.6.0"  # AWS PyTorch inference image (sagemaker-core image_uris), CPU
PYTORCH_INFERENCE_PY_VERSION = "py312"
# TorchServe in AWS's PyTorch inference image: "Maximum Request Size: 6553500" in its logs
# (aws/amazon-sagemaker-examples sm-batch_transform_pytorch; 413s in aws/sagemaker-python-sdk#1882).
PYTORCH_MODEL_SERVER_MAX_REQUEST_BYTES = 6_553_500
MODEL_SERVER_TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"  # sagemaker-inference-toolkit: TorchServe's response timeout, 60 s unset

# The SageMaker container's environment, one name each. Where the inference toolkit names one
# (sagemaker_inference/parameters.py) ours has its name; tests/batch_transform/test_bt_container_env.py
# checks they agree. The others are set by the Batch Transform service itself (BTS §4.1).
USER_PROGRAM_ENV = "SAGEMAKER_PROGRAM"
SUBMIT_DIRECTORY_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"
REGION_ENV = "SAGEMAKER_REGION"
DEFAULT_INVOCATIONS_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
BIND_TO_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
MAX_REQUEST_SIZE = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
BATCH_ENV = "SAGEMAKER_BATCH"
BATCH_STRATEGY_ENV = "SAGEMAKER_BATCH_STRATEGY"
MAX_CONCURRENT_TRANSFORMS_ENV = "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"  # streams: <job name>/<instance id>[/data-log]

# ---------------------------------------------------------------- model
MODEL_ARTIFACT_NAME = "model.tar.gz"
# A model version names one folder under models/: no "/" nor "." or ".." (a name from a user cannot
# point outside it), characters safe in S3 keys and run ids.
MODEL_VERSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
TRAIN_SEED = 20220526
# Of the span's origin hours, the latest share is held out to calibrate the predictive distribution
# (residuals of a model that never saw them); the family is fitted on the targets before it.
TRAIN_CALIBRATION_FRACTION = 0.25
TRAIN_CALIBRATION_ORIGINS = 8_000   # held-out origins drawn (x 24 horizons): ~1,000 residuals per cell
TRAIN_CHUNK_HOURS = 24              # origins per state grid while reading training samples
# The shipped family, chosen by backtest (training/README.md).
TRAIN_FAMILY = "gbm"
TRAIN_FAMILIES = ("gbm",)
# LightGBM, absolute error on the change over capacity, weighted by capacity (= MAE in bikes).
GBM_ROUNDS = 150
# One ensemble each: the next hour, the rest of the nowcast and the day get rows of their own.
GBM_HORIZON_GROUPS = ((1, 1), (2, 3), (4, 24))
GBM_MAX_ROWS = 200_000              # (origin, horizon) rows drawn per group: bounds the fit's CPU time
GBM_LEARNING_RATE = 0.08
GBM_NUM_LEAVES = 31
# Leaf-wise trees of 31 leaves reached depth 20+; NumPy serving walks every tree to the deepest
# leaf, so the depth bounds the serving time (a backtest day forecasts ~800,000 origin-horizons).
GBM_MAX_DEPTH = 8
GBM_MIN_DATA_IN_LEAF = 200
GBM_THREADS = 1                     # measured: 2 OpenMP threads on this shared 2-core machine ran 15x slower than 1
GBM_PROGRESS_EVERY = 25             # boosting rounds between progress lines (and the last one)
CHAMPION_POINTER = "champion"       # <root>/models/champion: the version the nightly run uses (JSON, written atomically)

# ---------------------------------------------------------------- runs
MAX_JOB_ATTEMPTS = 5                # -r1 .. -r4 after Failed/Stopped attempts of the same run
JOB_NAME_PREFIX = "velibcast"      # IAM policies scope SageMaker resources to this prefix
RUN_LOCK_TTL_S = 6 * 3600.0         # lease of a publish lock: a holder on another host is dead after it
RUN_RECORD_SCHEMA_VERSION = 3       # run_records: stage records and manifests of another version are refused
# A night whose origin has windows for fewer than this share of the network (the larger of
# the stations the model knows and those seen in the snapshots) is refused: empty store,
# wrong root, half import. On the bundled 2022 sample a normal origin covers ~0.94 of the
# 1,415 stations seen (3,994 windows for 3 origins; not renting or stale states are skipped).
MIN_STATION_COVERAGE = 0.5
BACKFILL_CONCURRENCY = 2
# Prefect retries of a stage that failed with a TransientError (flows/task_policy.py); the
# store clients already retry each call (S3_MAX_ATTEMPTS), so these cover longer outages.
STAGE_RETRIES = 2
STAGE_RETRY_DELAYS_S = (30, 120)
# Per-stage Prefect timeouts (config run.timeouts_s): generous bounds, so that a stage that hangs
# cannot hold the nightly slot forever; SageMaker adds instance start-up (minutes) to the transform.
STAGE_TIMEOUTS_S = {"windows": 1800, "transform": 4 * 3600, "publish": 1800, "report": 600, "score": 600}

# ---------------------------------------------------------------- command line
# A run started from the CLI without PREFECT_API_URL starts a temporary Prefect server. Prefect's
# 20 s start-up timeout failed `velibcast run` after 62 s on the shared 2-core machine (load ~6);
# the value only applies when the user has not set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.
PREFECT_EPHEMERAL_STARTUP_TIMEOUT_S = 120

# ---------------------------------------------------------------- accuracy and run report
ACCURACY_PREFIX = "accuracy"        # <root>/accuracy/run_date=D/part-0.parquet, one object per date
# An hour's actual is final once the store holds a capture this long after it: later
# captures can still carry observations made before the hour (CAPTURE_LAG_MAX_HOURS).
SCORE_SETTLE_HOURS = CAPTURE_LAG_MAX_HOURS
REPORT_BUSIEST_STATIONS = 3         # stations drawn in the run PNG, plus one unknown station if any
REPORT_PNG_DPI = 110
LOCAL_WAIT_POLL_S = 1.0             # polling a local job that another process of this host runs
