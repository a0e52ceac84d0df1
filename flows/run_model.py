"""The model a run uses: the config's model.uri, else the store's champion; read and checked.

The CLI checks it before Prefect starts (flows/preflight.py) and the flows read it again
in their first task, so a deployment run refuses a bad model the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass

from velibcast import constants as C
from velibcast import storage as st
from velibcast.config import Config, check_store_exists
from velibcast.errors import DataError, TerminalError
from velibcast.training.registry import champion_model_uri
from velibcast.transform_code.velib_features import contract_problem


def run_model_uri(cfg: Config, storage: st.Storage) -> str:
    """The model a run uses: the config's model.uri, else the champion of the store, whose root
    must exist (a mistyped root is named as such, not as a store without a champion)."""
    if cfg.model.uri:
        return cfg.model.uri
    check_store_exists(cfg)
    config = None if cfg.source.startswith("<") else cfg.source
    return champion_model_uri(storage, cfg.root, config)


HANDLERS = f"code/{C.HANDLER_PROGRAM_DEFAULT}"  # what SageMaker's PyTorch container runs


@dataclass(frozen=True)
class ModelInfo:
    version: str                  # as metadata.json says: it names the run, not the artifact
    station_index: dict[str, int]
    sha256: str                   # of the model.tar.gz's bytes: what reuse of a run's stages is keyed on


# Where the archive is checked as if extracted: any absolute folder; the model servers' own is the SageMaker one.
_EXTRACTED_AT = "/opt/ml/model"


def _tar_members(data: bytes, uri: str, names: set[str]) -> dict[str, bytes]:
    """`names`' contents; every member checked by the rule the runtime extracts with (tarfile's "data"
    filter), so an archive it would refuse is refused before any window is built."""
    out = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                try:
                    tarfile.data_filter(m, _EXTRACTED_AT)
                except tarfile.FilterError as e:
                    raise DataError(uri, f"member {m.name!r} cannot be extracted safely ({e})",
                                    "rebuild the model with `velibcast train`, or set model.uri to another "
                                    "model") from None
                name = m.name.removeprefix("./")
                if name in names and (f := tar.extractfile(m)) is not None:  # None: not a regular file
                    out[name] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(uri, f"not a readable model.tar.gz ({type(e).__name__}: {e})",
                        "rebuild it with `velibcast train`, delete it, or set model.uri to another model") from e
    return out


def _json_member(uri: str, members: dict[str, bytes], name: str) -> dict:
    try:
        value = json.loads(members[name])
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{uri} member {name}", f"not JSON ({e})", "rebuild the model with `velibcast train`") from e
    if not isinstance(value, dict):
        raise DataError(f"{uri} member {name}", "not a JSON object", "rebuild the model with `velibcast train`")
    return value


def load_model_info(storage: st.Storage, uri: str) -> ModelInfo:
    data = storage.read_bytes(uri)
    members = _tar_members(data, uri, {"metadata.json", "station_mappings.json", "config.json", HANDLERS})
    for need in ("metadata.json", "station_mappings.json", "config.json"):
        if need not in members:
            raise TerminalError(f"{uri} has no {need} at its root; rebuild it with `velibcast train`")
    if HANDLERS not in members:  # else found by the model servers, after the windows were built
        raise TerminalError(f"{uri} has no {HANDLERS}, the handlers the model servers run; rebuild it with "
                            "`velibcast train`, or point model.uri (or the champion) at another model")
    # Refused before any window is built, not by the servers mid-job.
    config = _json_member(uri, members, "config.json")
    problem = contract_problem(config.get("feature_columns"), config.get("output_columns"))
    if problem:
        raise TerminalError(f"{uri}: {problem}")
    meta = _json_member(uri, members, "metadata.json")
    mappings = _json_member(uri, members, "station_mappings.json")
    try:
        return ModelInfo(str(meta["version"]), {str(k): int(v) for k, v in mappings["station_index"].items()},
                         hashlib.sha256(data).hexdigest())
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(uri, f"metadata.json needs 'version' and station_mappings.json 'station_index' ({e!r})",
                        "rebuild the model with `velibcast train`") from e
