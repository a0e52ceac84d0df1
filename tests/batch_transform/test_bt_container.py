"""One instance of the local runtime: the model server process and its /ping wait."""

import os

from velibcast import constants as C
from velibcast.batch_transform.container import Container
from velibcast.batch_transform.lifeline import Lifeline

SLOW_MODEL = '''
import os, time

def model_fn(model_dir):
    while not os.path.exists(os.environ["TEST_READY_FILE"]):
        time.sleep(0.02)
    return {}

def transform_fn(model, body, content_type, accept):
    return body, accept
'''


def test_a_model_that_loads_in_130_s_is_waited_for(tmp_path):
    # Divergence 5: the service keeps pinging for up to 30 minutes (BTS §4.2); 120 s failed it.
    (tmp_path / "m" / "code").mkdir(parents=True)
    (tmp_path / "m" / "code" / "inference.py").write_text(SLOW_MODEL)
    ready = tmp_path / "ready"
    fake = {"now": 0.0}

    def clock():
        return fake["now"]

    def sleep(s):
        fake["now"] += s
        if fake["now"] >= 130 and not ready.exists():
            ready.write_text("loaded")       # the model finishes loading at t = 130 s
        os.sched_yield()

    lifeline = Lifeline(prefix="velibcast-test-")
    c = Container(str(tmp_path / "m"), {"TEST_READY_FILE": str(ready)}, 1, lifeline)
    try:
        c.wait_ready(clock=clock, sleep=sleep)
        assert fake["now"] >= 130
    finally:
        c.close()
        lifeline.close()
    assert C.CONTAINER_START_TIMEOUT_S == 30 * 60
