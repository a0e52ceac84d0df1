"""Sharding past one instance (docs/capacity-plan.md): with InstanceCount 4 and
MaxConcurrentTransforms 2, the windows stage writes 4 x 2 shards of near-equal size, the
runtime deals them 2 to each instance, and every record comes back exactly once."""

from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from velibcast.batch_transform.local import LocalRuntime, distribute, server_thread_env
from velibcast.datasets.assemble import assemble_transform_inputs
from velibcast.datasets.records import shard_count_for
from velibcast.datasets.windows import origins_for_range
from velibcast.storage import Storage
from velibcast.timeutil import UTC

SAMPLE = str(Path(__file__).resolve().parents[2] / "sample_data")


def test_instance_count_4_spreads_objects_evenly_and_every_record_returns_once(tmp_path, model_tar, make_spec):
    storage = Storage()
    origins = origins_for_range(datetime(2022, 5, 25, 8, tzinfo=UTC), datetime(2022, 5, 25, 12, tzinfo=UTC))
    shards = shard_count_for(4, 2)
    r = assemble_transform_inputs(storage, SAMPLE, origins, str(tmp_path / "in"), shard_count=shards, report_uri=str(tmp_path / "report.json"),
                                  index_uri=str(tmp_path / "index.parquet"))
    sent = pq.read_table(str(tmp_path / "index.parquet")).column("record_id").to_pylist()
    assert len(r.shards) == shards == 8 and len(sent) > 4000
    per_shard = [len(storage.read_bytes(u).splitlines()) for u in r.shards]
    assert max(per_shard) - min(per_shard) <= 1 and sum(per_shard) == len(sent)
    per_instance = [len(share) for share in distribute(sorted(r.shards), 4)]
    assert per_instance == [2, 2, 2, 2]

    rt = LocalRuntime(storage, str(tmp_path / "state"))
    try:
        rt.create_model("test-model", model_tar)
        spec = make_spec("sharded", str(tmp_path / "in") + "/", str(tmp_path / "out"), MaxConcurrentTransforms=2,
                         DataProcessing={"InputFilter": "$[1:]", "OutputFilter": "$[0,-1:]", "JoinSource": "Input"},
                         TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 4})
        d = rt.create_transform_job(spec)
    finally:
        rt.close()
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    outs = [o.uri for o in storage.list(str(tmp_path / "out")) if o.uri.endswith(".out")]
    assert len(outs) == shards
    back = Counter(line.split(b",")[0].decode() for u in outs for line in storage.read_bytes(u).splitlines())
    assert set(back.values()) == {1} and sorted(back) == sorted(sent)


def test_each_server_gets_its_share_of_the_cores():
    assert server_thread_env(1, 1, cpus=2)["OMP_NUM_THREADS"] == "2"
    assert server_thread_env(2, 1, cpus=2)["OMP_NUM_THREADS"] == "1"   # 2 x 1 thread, not 2 x 2
    assert server_thread_env(1, 2, cpus=2)["OMP_NUM_THREADS"] == "1"   # two requests at once share the cores
    assert server_thread_env(4, 4, cpus=2)["OMP_NUM_THREADS"] == "1"   # never 0
    assert server_thread_env(2, 2, cpus=16) == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4",
                                                "OMP_WAIT_POLICY": "PASSIVE"}  # idle threads yield their core
