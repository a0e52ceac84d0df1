-- Glue/Athena table over the hourly station states (docs/states-dataset.md).
-- Replace the bucket/prefix with your store.root (configs/aws.yaml: s3://velibcast-prod/velibcast).
-- Partition projection: no crawler and no MSCK REPAIR; a date ingested now is queryable at once.
-- `date` is the UTC date of hour_ts, a partition key read from the folder name (the objects do not hold it).
-- A date folder holds part-00.parquet .. part-23.parquet (one per hour) and _ledger.json, which Athena skips (a leading _).
CREATE DATABASE IF NOT EXISTS velibcast;

CREATE EXTERNAL TABLE IF NOT EXISTS velibcast.states (
  station_code     string    COMMENT 'Velib stationcode, e.g. 16107',
  hour_ts          timestamp COMMENT 'the whole UTC hour this row is the state at',
  bikes            smallint  COMMENT 'bikes available',
  mechanical       smallint  COMMENT 'of which mechanical',
  ebike            smallint  COMMENT 'of which electric',
  docks            smallint  COMMENT 'free docks',
  capacity         smallint  COMMENT 'docks in the station',
  is_installed     boolean   COMMENT 'the station is installed',
  is_renting       boolean   COMMENT 'bikes can be taken',
  is_returning     boolean   COMMENT 'bikes can be returned',
  lat              double    COMMENT 'WGS 84 latitude',
  lon              double    COMMENT 'WGS 84 longitude',
  observed_at      timestamp COMMENT 'when the feed observed this state (duedate, else the capture time)',
  captured_at      timestamp COMMENT 'when the capture holding it was taken',
  source_object    string    COMMENT 'that capture object, by its key under velib/snapshots/'
)
COMMENT 'velibcast hourly station states; one object per UTC hour (date=D/part-HH.parquet), each replaced whole by ingest'
PARTITIONED BY (
  date             string    COMMENT 'UTC date of hour_ts, YYYY-MM-DD'
)
STORED AS PARQUET
LOCATION 's3://velibcast-prod/velibcast/states/'
TBLPROPERTIES (
  'projection.enabled'             = 'true',
  'projection.date.type'           = 'date',
  'projection.date.format'         = 'yyyy-MM-dd',
  'projection.date.range'          = '2022-01-01,NOW',
  'projection.date.interval'       = '1',
  'projection.date.interval.unit'  = 'DAYS',
  'storage.location.template'      = 's3://velibcast-prod/velibcast/states/date=${date}/',
  'parquet.compression'            = 'ZSTD'
);

-- Example: bikes at station 16107, hour by hour, in May 2022
--   SELECT hour_ts, bikes, ebike, docks FROM velibcast.states
--   WHERE date BETWEEN '2022-05-01' AND '2022-05-31' AND station_code = '16107' ORDER BY hour_ts;
