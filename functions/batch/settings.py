"""The batch scoring function's environment contract: the serving stack renders it, the handlers read it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from functions.common import env
from functions.common.env import SERVICE_VARIABLE, EnvContract, variable
from functions.common.registry import DEFAULT_PREFIX as DEFAULT_REGISTRY_PREFIX


@dataclass(frozen=True, kw_only=True)
class BatchSettings(EnvContract):
    description = "batch scoring"

    service: str = variable(SERVICE_VARIABLE, default="driftloop-batch")
    # The registry the version is resolved from and downloaded.
    model_bucket: str = variable("DRIFTLOOP_MODEL_BUCKET")
    registry_prefix: str = variable("DRIFTLOOP_REGISTRY_PREFIX", default=DEFAULT_REGISTRY_PREFIX)
    # Inputs, predictions and run records (functions.batch.layout).
    data_bucket: str = variable("DRIFTLOOP_DATA_BUCKET")
    # The capture delivery stream, which the score function's log subscription feeds (its capture lines); without
    # one a run asking for capture is refused.
    capture_stream: str | None = variable("DRIFTLOOP_CAPTURE_STREAM", default=None)
    # The ARN of the secret holding the prediction id keys the inference API verifies (functions.inference.id_keys);
    # unset: a key of this process's own.
    id_key_secret: str | None = variable("DRIFTLOOP_ID_KEY_SECRET", default=None)
    # Rows validated, predicted and captured at a time: memory stays flat whatever the object's size.
    chunk_rows: int = variable("DRIFTLOOP_BATCH_CHUNK_ROWS", env.POSITIVE_INT, default=1000)
    # Where downloaded bundles and output files are written; unset: the temporary directory.
    work_dir: Path | None = variable("DRIFTLOOP_WORK_DIR", env.PATH, default=None)

    @property
    def scratch(self) -> Path:
        return self.work_dir or Path(tempfile.gettempdir()) / "driftloop-batch"
