-- Glue/Athena table over the forecast dataset (docs/forecast-dataset.md).
-- Athena runs one statement at a time: run the CREATE statements one by one.
-- Replace the bucket/prefix with your store.root (configs/aws.yaml: s3://velibcast-prod/velibcast).
-- Partition projection: no crawler and no MSCK REPAIR; a date published tonight is queryable at once.
-- Only `run_date=YYYY-MM-DD/` folders are read, so `forecasts/_locks/` never shows up as data.
CREATE DATABASE IF NOT EXISTS velibcast;

CREATE EXTERNAL TABLE IF NOT EXISTS velibcast.forecasts (
  station_code     string    COMMENT 'Velib stationcode, e.g. 16107 (a string: codes have leading zeros elsewhere)',
  origin_ts        timestamp COMMENT 'UTC whole hour the forecast starts from (the last observed state)',
  horizon_h        tinyint   COMMENT '1, 2 or 3 hours ahead',
  target_ts        timestamp COMMENT 'UTC hour forecast: origin_ts + horizon_h hours',
  bikes_pred       int       COMMENT 'bikes available at target_ts, clamped to [0, capacity]',
  capacity         int       COMMENT 'station capacity at origin_ts',
  unknown_station  boolean   COMMENT 'true: the station is not in the model mapping (reserved index 0)',
  model_version    string    COMMENT 'models/<model_version>/model.tar.gz',
  run_id           string    COMMENT 'the run that published this date: runs/<run_id>/manifest.json'
)
COMMENT 'velibcast hourly forecasts; one object per run_date, replaced whole by a rerun'
PARTITIONED BY (run_date string COMMENT 'Europe/Paris local day of the origins, YYYY-MM-DD')
STORED AS PARQUET
LOCATION 's3://velibcast-prod/velibcast/forecasts/'
TBLPROPERTIES (
  'projection.enabled'             = 'true',
  'projection.run_date.type'       = 'date',
  'projection.run_date.format'     = 'yyyy-MM-dd',
  'projection.run_date.range'      = '2022-01-01,NOW',
  'projection.run_date.interval'   = '1',
  'projection.run_date.interval.unit' = 'DAYS',
  'storage.location.template'      = 's3://velibcast-prod/velibcast/forecasts/run_date=${run_date}/',
  'parquet.compression'            = 'ZSTD'
);

-- Accuracy table written by `velibcast score` (flows/score.py): one row per horizon and date.
CREATE EXTERNAL TABLE IF NOT EXISTS velibcast.accuracy (
  run_id                         string,
  model_version                  string,
  horizon_h                      tinyint,
  forecast_rows                  bigint,
  scored_rows                    bigint,
  mae_model                      double  COMMENT 'null when no row is scored',
  mae_persistence                double  COMMENT 'persistence = the state at origin_ts, on the same rows',
  bias_model                     double  COMMENT 'mean(pred - actual)',
  unscorable_actual_not_settled  bigint,
  unscorable_no_actual           bigint,
  unscorable_stale_actual        bigint,
  unscorable_actual_not_observed bigint  COMMENT 'no capture near the target hour (a state carried forward)',
  unscorable_no_origin_value     bigint,
  status                         string  COMMENT 'partial | scored',
  actuals_through                timestamp,
  scored_at                      timestamp
)
PARTITIONED BY (run_date string)
STORED AS PARQUET
LOCATION 's3://velibcast-prod/velibcast/accuracy/'
TBLPROPERTIES (
  'projection.enabled'             = 'true',
  'projection.run_date.type'       = 'date',
  'projection.run_date.format'     = 'yyyy-MM-dd',
  'projection.run_date.range'      = '2022-01-01,NOW',
  'projection.run_date.interval'   = '1',
  'projection.run_date.interval.unit' = 'DAYS',
  'storage.location.template'      = 's3://velibcast-prod/velibcast/accuracy/run_date=${run_date}/'
);

-- Examples
-- The night of 2022-05-26 for one station, with the run that published it:
--   SELECT origin_ts, horizon_h, target_ts, bikes_pred, run_id
--   FROM velibcast.forecasts WHERE run_date = '2022-05-26' AND station_code = '16107'
--   ORDER BY origin_ts, horizon_h;
-- Model against persistence over a month:
--   SELECT horizon_h, sum(mae_model * scored_rows) / sum(scored_rows) AS mae_model,
--          sum(mae_persistence * scored_rows) / sum(scored_rows) AS mae_persistence
--   FROM velibcast.accuracy WHERE run_date BETWEEN '2026-01-01' AND '2026-01-31' AND status = 'scored'
--   GROUP BY horizon_h ORDER BY horizon_h;
