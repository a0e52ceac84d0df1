"""The Prefect `train` flow: stream samples, fit a family, backtest it, package it, optionally promote.

Progress lines (one per epoch, or per GBM_PROGRESS_EVERY boosting rounds, with the elapsed
time) go to the flow's logger, so they show in the Prefect UI and on the console.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prefect import flow, get_run_logger

from velibcast.config import load_config
from velibcast.errors import ConfigError
from velibcast.timeutil import UTC
from velibcast.training import registry
from velibcast.training.train import train_model


@flow(name="train", log_prints=True)
def train(config: str = "configs/local.yaml", start: datetime | None = None, end: datetime | None = None,
          family: str | None = None, snapshots: str | None = None, out: str | None = None, seed: int | None = None,
          backtest: bool = True, promote: bool = False) -> dict:
    """Train on the hours in [start, end) (default: model.train_start/train_end of the config)."""

    logger = get_run_logger()
    cfg = load_config(config)
    start = start or (cfg.model.train_start.astimezone(UTC) if cfg.model.train_start else None)
    end = end or (cfg.model.train_end.astimezone(UTC) if cfg.model.train_end else None)
    if start is None or end is None:
        raise ConfigError("no training span: give start and end, or model.train_start/train_end in the config")
    storage = cfg.storage()
    # [start, end) like every range; train_model takes the last hour it may learn, the one before end.
    last_hour = end - timedelta(microseconds=1)
    info = train_model(storage, snapshots or cfg.snapshots_root, start, last_hour, out or cfg.root, seed=seed,
                       family=family, backtest=backtest, progress=logger.info, states_root=cfg.root)
    if promote:
        try:
            pointer = registry.promote(storage, out or cfg.root, info["version"])
            info["promotion"] = f"promoted {pointer['version']} to champion"
        except registry.PromotionRefused as e:
            info["promotion"] = str(e)
        logger.info(info["promotion"])
    return info
