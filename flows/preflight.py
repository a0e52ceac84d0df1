"""What a run needs from its config and store, checked by the CLI before Prefect starts.

A user error found here is one line and about a second; found inside a Prefect task it came
after the temporary API server's start (10 s on this machine) and behind two tracebacks. The
flows resolve the model through the same function, so a deployment run fails the same way.
"""

from __future__ import annotations

from velibcast import storage as st
from velibcast.config import Config, check_store_writable
from velibcast.errors import ConfigError
from velibcast.training.registry import champion_model_uri


def run_model_uri(cfg: Config, storage: st.Storage) -> str:
    """The model a run uses: the config's model.uri, else the champion of the store."""
    return cfg["model"]["uri"] or champion_model_uri(storage, cfg.root)


def check_run(cfg: Config) -> str:
    """The store root is writable and the run's model exists; returns the model's URI."""
    check_store_writable(cfg)
    storage = cfg.storage()
    uri = run_model_uri(cfg, storage)
    if not storage.exists(uri):
        if cfg["model"]["uri"]:
            raise ConfigError(f"{cfg.source}: model.uri {uri} does not exist; point model.uri at a model.tar.gz, "
                              "or remove it to use the store's champion")
        raise ConfigError(f"the champion pointer of {cfg.root} names {uri}, which does not exist; "
                          "promote another model with `velibcast models promote VERSION --force`")
    return uri
