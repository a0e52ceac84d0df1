"""Model lifecycle: versions under <root>/models/<version>/, and the champion the nightly run uses.

    models/<version>/model.tar.gz   the model (metadata.json inside holds its backtest)
    models/<version>/metrics.json   the same metrics, readable without opening the archive
    models/champion                 {"version", "model_uri", "promoted_at", "forced", "reason", ...}

The pointer is one object written whole (Storage.write_bytes: a local rename or one S3 PUT),
so a reader sees the old champion or the new one, never a half-written pointer. Training
never moves it: only `promote` does, and it refuses a model that does not beat persistence
or the current champion on its backtest unless forced (the reason is recorded).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from datetime import datetime

import numpy as np

from velibcast import constants as C
from velibcast import storage as st
from velibcast.errors import ConfigError, NotFound
from velibcast.timeutil import UTC

METRICS = "metrics.json"


class PromotionRefused(ConfigError):
    """The candidate loses on the evidence; `--force` overrides and is recorded."""


class CorruptPointer(ConfigError):
    """The champion pointer is not one (a hand edit, a copy cut short); `promote --force` replaces it."""


def models_root(root: str) -> str:
    return st.join(root, "models")


def check_version(version: str) -> str:
    """`version` if it is a model version name (C.MODEL_VERSION_PATTERN, and not the champion
    pointer's name), else a ConfigError: every path under models/ is built from a checked one."""
    if not re.fullmatch(C.MODEL_VERSION_PATTERN, version) or version == C.CHAMPION_POINTER:
        raise ConfigError(f"{version!r} is not a model version name (letters, digits, '.', '_' and '-', starting "
                          f"with a letter or digit, not {C.CHAMPION_POINTER!r}); `velibcast models list` shows the versions")
    return version


def model_uri(root: str, version: str) -> str:
    return st.join(models_root(root), check_version(version), C.MODEL_ARTIFACT_NAME)


def champion_uri(root: str) -> str:
    return st.join(models_root(root), C.CHAMPION_POINTER)


def write_metrics(storage: st.Storage, root: str, version: str, metrics: dict) -> str:
    uri = st.join(models_root(root), version, METRICS)
    storage.write_text(uri, json.dumps(metrics, indent=2, sort_keys=True) + "\n", "application/json")
    return uri


def read_metadata(storage: st.Storage, uri: str) -> dict:
    with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(uri)), mode="r:gz") as tar:
        for m in tar.getmembers():
            if m.name.removeprefix("./") == "metadata.json" and (f := tar.extractfile(m)) is not None:
                return json.loads(f.read())
    raise ConfigError(f"{uri} has no metadata.json at its root; rebuild it with `velibcast train`")


def read_champion(storage: st.Storage, root: str) -> dict | None:
    """The champion pointer, None when there is none. Its readers need version and model_uri as text."""
    uri = champion_uri(root)
    try:
        pointer = json.loads(storage.read_text(uri))
    except NotFound:
        return None
    except ValueError:  # not JSON, or not even text
        pointer = None
    if not (isinstance(pointer, dict) and all(isinstance(pointer.get(k), str) for k in ("version", "model_uri"))):
        raise CorruptPointer(f"{uri}: not a champion pointer (a JSON object whose version and model_uri are text); "
                             "point it at a model again with `velibcast models promote VERSION --force`")
    return pointer


def champion_model_uri(storage: st.Storage, root: str, config: str | None = None) -> str:
    """The model the nightly run uses when the config names none. `config`: the config file the
    run was given, quoted in the fix so the commands act on the same store."""
    champ = read_champion(storage, root)
    if champ is None:
        known = list_versions(storage, root)
        opt = f" --config {config}" if config else ""
        hint = (f"promote one of {', '.join(known[:5])} with `velibcast models promote VERSION{opt}`" if known
                else f"train one with `velibcast train{opt}`, then `velibcast models promote VERSION{opt}`")
        raise ConfigError(f"no champion model: {champion_uri(root)} does not exist; {hint}, "
                          "or set model.uri in the config")
    return champ["model_uri"]


def list_versions(storage: st.Storage, root: str) -> list[str]:
    prefix = models_root(root) + "/"
    out = set()
    for o in storage.list(prefix):
        rel = o.uri[len(prefix):]
        if rel.endswith("/" + C.MODEL_ARTIFACT_NAME):
            out.add(rel.split("/", 1)[0])
    return sorted(out)


def backtest_of(metadata: dict) -> dict | None:
    return ((metadata or {}).get("metrics") or {}).get("backtest")


def training_span(metadata: dict) -> tuple[datetime, datetime] | None:
    td = (metadata or {}).get("training_data") or {}
    if not td.get("start") or not td.get("end"):
        return None
    parse = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(UTC)
    return parse(td["start"]), parse(td["end"])


def in_training_span(span, first: datetime, last: datetime) -> bool | None:
    """Whether the target hours [first, last] overlap the training hours (a model has then seen those
    values as targets); None if the model does not record its span."""
    if span is None:
        return None
    return not (last < span[0] or first > span[1])


def summary_line(metadata: dict) -> dict | None:
    """The backtest summary of a model's own family, by horizon bucket (training.backtest.BUCKETS):
    what the manifest and `models list` show."""
    bt = backtest_of(metadata)
    if not bt or not bt.get("summary"):
        return None
    fam = metadata.get("family") or (bt.get("candidates") or [None])[0]
    s = bt["summary"].get(fam)
    if s is None:
        return None
    return {"family": fam, "days": [r["day"] for r in bt["days"]], "buckets": s["buckets"],
            "mae_by_bucket": s["mae_by_bucket"],
            "persistence_mae_by_bucket": bt["summary"]["persistence"]["mae_by_bucket"],
            "gain_vs_persistence_pct": s["gain_vs_persistence_pct"],
            "beats_persistence_every_day_every_horizon": s["beats_persistence_every_day_every_horizon"]}


def _day_maes(metadata: dict) -> dict[str, float]:
    """Backtest day -> the family's MAE over every horizon, weighted by the outcomes scored."""
    bt = backtest_of(metadata) or {"days": []}
    fam = metadata.get("family") or (bt.get("candidates") or ["model"])[0]
    out = {}
    for r in bt["days"]:
        sc = (r.get("scores") or {}).get(fam)
        if sc:
            pairs = [(m, c) for m, c in zip(sc["mae"][fam], sc["n"]) if m is not None and c]
            if pairs:
                out[r["day"]] = sum(m * c for m, c in pairs) / sum(c for _, c in pairs)
    return out


def check_promotion(candidate: dict, champion: dict | None) -> list[str]:
    """Why `candidate` (metadata) should not replace `champion` (metadata or None); empty when it may."""
    problems = []
    s = summary_line(candidate)
    if s is None:
        return [f"{candidate.get('version')} has no backtest day (its training span has no day with training "
                "data before it): there is no evidence it beats persistence"]
    losing = [f"{b} {m:.3f} vs {p:.3f}" for b, m, p in zip(s["buckets"], s["mae_by_bucket"],
                                                           s["persistence_mae_by_bucket"])
              if m is not None and p is not None and m >= p]
    if losing:
        problems.append(f"{candidate['version']} does not beat persistence on its backtest "
                        f"({', '.join(losing)}, MAE over {len(s['days'])} days)")
    # An unproven champion (no backtest day, e.g. the demo's) cannot block a proven candidate.
    if champion is not None and champion.get("version") != candidate.get("version") and _day_maes(champion):
        mine, theirs = _day_maes(candidate), _day_maes(champion)
        common = sorted(set(mine) & set(theirs))
        if not common:
            problems.append(f"{candidate['version']} and the champion {champion.get('version')} share no backtest "
                            "day, so they cannot be compared")
        else:
            a = float(np.mean([mine[d] for d in common]))
            b = float(np.mean([theirs[d] for d in common]))
            if a > b:
                problems.append(f"{candidate['version']} loses to the champion {champion['version']} on the common "
                                f"backtest days {', '.join(common)}: MAE {a:.3f} vs {b:.3f} (every horizon)")
    return problems


def promote(storage: st.Storage, root: str, version: str, force: bool = False, reason: str | None = None,
            now: datetime | None = None) -> dict:
    uri = model_uri(root, version)
    if not storage.exists(uri):
        raise ConfigError(f"no model {version}: {uri} does not exist; `velibcast models list` shows the versions")
    meta = read_metadata(storage, uri)
    try:
        current = read_champion(storage, root)
    except CorruptPointer:
        if not force:
            raise
        current = None  # nothing to compare with: the pointer is replaced whole below
    champ_meta = read_metadata(storage, current["model_uri"]) if current else None
    problems = check_promotion(meta, champ_meta)
    if problems and not force:
        raise PromotionRefused("promotion refused: " + "; ".join(problems) + ". Use --force to promote anyway "
                               "(recorded in the pointer)")
    pointer = {"version": version, "model_uri": uri,
               "promoted_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
               "forced": bool(problems), "overridden": problems, "reason": reason,
               "previous": current.get("version") if current else None,
               "backtest_summary": summary_line(meta)}
    storage.write_text(champion_uri(root), json.dumps(pointer, indent=2) + "\n", "application/json")
    return pointer


def describe(storage: st.Storage, root: str) -> list[dict]:
    champ = read_champion(storage, root)
    out = []
    for v in list_versions(storage, root):
        meta = read_metadata(storage, model_uri(root, v))
        out.append({"version": v, "champion": bool(champ and champ["version"] == v),
                    "family": meta.get("family", meta.get("architecture")),
                    "training_data": {k: (meta.get("training_data") or {}).get(k) for k in ("start", "end", "samples")},
                    "backtest": summary_line(meta)})
    return out
