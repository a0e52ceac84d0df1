-- Glue/Athena tables over the forecast and accuracy datasets (docs/forecast-dataset.md).
-- Athena runs one statement at a time: run the CREATE statements one by one.
-- Replace the bucket/prefix with your store.root (configs/aws.yaml: s3://velibcast-prod/velibcast).
-- Partition projection: no crawler and no MSCK REPAIR; a date published tonight is queryable at once.
-- Only `product=P/run_date=YYYY-MM-DD/` folders are read, so `forecasts/_locks/` never shows up as data.
-- `product` and `run_date` are partition keys, read from the folder names (the objects hold neither).
-- A table created before the products: DROP TABLE velibcast.forecasts (the data stays), then CREATE.
CREATE DATABASE IF NOT EXISTS velibcast;

CREATE EXTERNAL TABLE IF NOT EXISTS velibcast.forecasts (
  station_code     string    COMMENT 'Velib stationcode, e.g. 16107 (a string: codes have leading zeros elsewhere)',
  origin_ts        timestamp COMMENT 'UTC whole hour the forecast starts from (the last observed state)',
  horizon_h        tinyint   COMMENT 'hours ahead: 1..24 (day-ahead), 1..3 (nowcast, evaluation)',
  target_ts        timestamp COMMENT 'UTC hour forecast: origin_ts + horizon_h hours',
  bikes_pred       int       COMMENT 'point forecast of the bikes available at target_ts, in [0, capacity]',
  bikes_p10        int       COMMENT '10th percentile of the bikes at target_ts, in [0, capacity]',
  bikes_p50        int       COMMENT 'median of the bikes at target_ts, in [0, capacity]',
  bikes_p90        int       COMMENT '90th percentile of the bikes at target_ts; bikes_p10 <= bikes_p50 <= bikes_p90',
  p_empty          float     COMMENT 'probability of 0 bikes at target_ts, in [0, 1]',
  p_full           float     COMMENT 'probability of 0 free docks (bikes = capacity) at target_ts, in [0, 1]',
  capacity         int       COMMENT 'station capacity at origin_ts',
  unknown_station  boolean   COMMENT 'true: the station is not in the model mapping (reserved index 0)',
  fallback         string    COMMENT 'empty when the model served the row, else the name of the fallback that did',
  model_version    string    COMMENT 'models/<model_version>/model.tar.gz',
  run_id           string    COMMENT 'the run that published the row: runs/<run_id>/manifest.json'
)
COMMENT 'velibcast hourly forecasts; one object per product and run_date, replaced whole by a rerun'
PARTITIONED BY (
  product          string    COMMENT 'day-ahead | nowcast | evaluation',
  run_date         string    COMMENT 'Europe/Paris local day of the origins, YYYY-MM-DD'
)
STORED AS PARQUET
LOCATION 's3://velibcast-prod/velibcast/forecasts/'
TBLPROPERTIES (
  'projection.enabled'             = 'true',
  'projection.product.type'        = 'enum',
  'projection.product.values'      = 'day-ahead,nowcast,evaluation',
  'projection.run_date.type'       = 'date',
  'projection.run_date.format'     = 'yyyy-MM-dd',
  'projection.run_date.range'      = '2022-01-01,NOW',
  'projection.run_date.interval'   = '1',
  'projection.run_date.interval.unit' = 'DAYS',
  'storage.location.template'      = 's3://velibcast-prod/velibcast/forecasts/product=${product}/run_date=${run_date}/',
  'parquet.compression'            = 'ZSTD'
);

-- Accuracy table written by `velibcast score` (flows/score.py): one row per product, date and horizon.
CREATE EXTERNAL TABLE IF NOT EXISTS velibcast.accuracy (
  run_id                         string,
  model_version                  string,
  horizon_h                      tinyint,
  forecast_rows                  bigint,
  scored_rows                    bigint,
  mae_model                      double  COMMENT 'null when no row is scored',
  mae_persistence                double  COMMENT 'persistence = the state at origin_ts, on the same rows',
  bias_model                     double  COMMENT 'mean(pred - actual)',
  pinball_bikes_p10              double  COMMENT 'pinball loss of bikes_p10 (lower is better)',
  pinball_bikes_p50              double  COMMENT 'pinball loss of bikes_p50',
  pinball_bikes_p90              double  COMMENT 'pinball loss of bikes_p90',
  coverage_p10_p90               double  COMMENT 'share of actuals in [bikes_p10, bikes_p90]; about 0.8 when calibrated',
  brier_empty                    double  COMMENT 'Brier score of p_empty (lower is better)',
  brier_empty_persistence        double  COMMENT 'Brier score of persistence: 1 if empty at origin_ts, else 0',
  brier_full                     double  COMMENT 'Brier score of p_full',
  brier_full_persistence         double  COMMENT 'Brier score of persistence: 1 if full at origin_ts, else 0',
  brier_empty_climatology        double  COMMENT 'Brier score of the frequency of empty at the station, local hour and day type over the 14 days before',
  brier_full_climatology         double  COMMENT 'the same for full',
  unscorable_actual_not_settled  bigint,
  unscorable_no_actual           bigint,
  unscorable_stale_actual        bigint,
  unscorable_actual_not_observed bigint  COMMENT 'no capture near the target hour (a state carried forward)',
  unscorable_actual_is_origin_record bigint COMMENT 'the target state is the origin record: nothing new observed between them',
  unscorable_no_origin_value     bigint,
  status                         string  COMMENT 'partial | scored',
  actuals_through                timestamp,
  scored_at                      timestamp
)
PARTITIONED BY (
  product                        string  COMMENT 'day-ahead | nowcast | evaluation',
  run_date                       string  COMMENT 'Europe/Paris local day of the origins scored, YYYY-MM-DD'
)
STORED AS PARQUET
LOCATION 's3://velibcast-prod/velibcast/accuracy/'
TBLPROPERTIES (
  'projection.enabled'             = 'true',
  'projection.product.type'        = 'enum',
  'projection.product.values'      = 'day-ahead,nowcast,evaluation',
  'projection.run_date.type'       = 'date',
  'projection.run_date.format'     = 'yyyy-MM-dd',
  'projection.run_date.range'      = '2022-01-01,NOW',
  'projection.run_date.interval'   = '1',
  'projection.run_date.interval.unit' = 'DAYS',
  'storage.location.template'      = 's3://velibcast-prod/velibcast/accuracy/product=${product}/run_date=${run_date}/'
);

-- Examples
-- The day ahead for one station, from the day-ahead runs whose origin is on 2022-05-26 (Paris); the
-- nightly one, issued at 02:30, starts from 02:00 Paris time (2022-05-26 00:00 UTC):
--   SELECT origin_ts, target_ts AT TIME ZONE 'Europe/Paris' AS target_paris, bikes_p10, bikes_p50, bikes_p90, p_empty
--   FROM velibcast.forecasts
--   WHERE product = 'day-ahead' AND run_date = '2022-05-26' AND station_code = '16107'
--   ORDER BY origin_ts, horizon_h;
-- Stations more likely empty than not at 08:00 Paris time (06:00 UTC) on 2022-05-26, by the latest
-- day-ahead forecast of that hour:
--   SELECT station_code, max_by(p_empty, origin_ts) AS p_empty FROM velibcast.forecasts
--   WHERE product = 'day-ahead' AND run_date = '2022-05-26' AND target_ts = timestamp '2022-05-26 06:00:00'
--   GROUP BY station_code HAVING max_by(p_empty, origin_ts) > 0.5 ORDER BY 2 DESC;
-- Model against persistence over a month of evaluation runs:
--   SELECT horizon_h, sum(mae_model * scored_rows) / sum(scored_rows) AS mae_model,
--          sum(mae_persistence * scored_rows) / sum(scored_rows) AS mae_persistence
--   FROM velibcast.accuracy
--   WHERE product = 'evaluation' AND run_date BETWEEN '2026-01-01' AND '2026-01-31' AND status = 'scored'
--   GROUP BY horizon_h ORDER BY horizon_h;
