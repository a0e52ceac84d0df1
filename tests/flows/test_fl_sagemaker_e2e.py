"""The nightly flow on the SageMaker backend, end to end without AWS: S3 on the moto server,
SageMaker on velibcast's local API endpoint. Same Parquet as the local backend."""

import io
import json

import pyarrow.parquet as pq

from velibcast import storage as st


def test_sagemaker_backend_gives_the_local_backend_s_forecasts(tmp_path, s3_root, sagemaker_api, storage,
                                                               trained_model, e2e):
    model_uri = st.join(s3_root, "models", "model.tar.gz")
    storage.write_bytes(model_uri, storage.read_bytes(trained_model["model_uri"]))
    tables = {}
    for backend in ("local", "sagemaker"):
        root = st.join(s3_root, backend)
        e2e.copy_snapshots(storage, root)
        extra = {"transform": {"backend": backend}}
        if backend == "sagemaker":
            extra["transform"]["sagemaker"] = {"role_arn": "arn:aws:iam::000000000000:role/velibcast-sagemaker",
                                               "region": "eu-west-3"}
        res = e2e.run(e2e.config(tmp_path, root, model_uri, name=backend, **extra))
        tables[backend] = pq.read_table(io.BytesIO(storage.read_bytes(res["forecast_parquet"])))
        manifest = json.loads(storage.read_text(res["manifest_uri"]))
        assert manifest["transform_job"]["backend"] == backend
    assert tables["sagemaker"].num_rows == tables["local"].num_rows > 1000
    assert tables["sagemaker"].drop_columns(["run_id"]).equals(tables["local"].drop_columns(["run_id"]))
