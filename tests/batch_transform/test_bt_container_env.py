"""Our container environment names agree with AWS's inference toolkit where it names them."""

import sagemaker_inference.parameters as toolkit

from velibcast import constants as C


def test_container_env_names_agree_with_the_inference_toolkit():
    shared = ["USER_PROGRAM_ENV", "DEFAULT_INVOCATIONS_ACCEPT_ENV", "MODEL_SERVER_TIMEOUT_ENV", "BIND_TO_PORT_ENV",
              "MAX_REQUEST_SIZE"]
    for name in shared:
        assert getattr(C, name) == getattr(toolkit, name), name


def test_no_container_env_name_is_spelled_twice():
    names = [v for k, v in vars(C).items() if isinstance(v, str) and v.startswith("SAGEMAKER_")]
    assert len(names) == len(set(names)) >= 10
