"""The inference function's environment contract: the serving stack renders it, the app reads it at start.

A bad setting stops the function at start with every problem listed (:class:`~functions.common.env.EnvError`),
rather than surfacing later as puzzling request failures. Having no model configured is not a setting error: the
API then answers 503.

The stack renders every value from cdk.json; the defaults serve local runs (``driftloop serve``, tests) and agree
with cdk.json's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from functions.common import env
from functions.common.env import SERVICE_VARIABLE, EnvContract, variable
from functions.common.registry import DEFAULT_PREFIX as DEFAULT_REGISTRY_PREFIX
from functions.inference.capture import SINK_NAMES


@dataclass(frozen=True, kw_only=True)
class InferenceSettings(EnvContract):
    description = "inference"

    # The Service dimension of the metrics and logs; a local run has no stage to name.
    service: str = variable(SERVICE_VARIABLE, default="driftloop-inference")
    # An extracted bundle to serve (local runs, tests); takes precedence over the registry.
    model_dir: Path | None = variable("DRIFTLOOP_MODEL_DIR", env.PATH, default=None)
    # Serve the registry's champion.
    model_bucket: str | None = variable("DRIFTLOOP_MODEL_BUCKET", default=None)
    registry_prefix: str = variable("DRIFTLOOP_REGISTRY_PREFIX", default=DEFAULT_REGISTRY_PREFIX)
    # How often, at most, the champion pointer is re-read.
    refresh_seconds: float = variable("DRIFTLOOP_REFRESH_SECONDS", env.NON_NEGATIVE, default=60.0)
    # Where downloaded bundles are extracted; unset: see ``models_dir``.
    work_dir: Path | None = variable("DRIFTLOOP_WORK_DIR", env.PATH, default=None)
    # Request limits.
    max_instances: int = variable("DRIFTLOOP_MAX_INSTANCES", env.POSITIVE_INT, default=1000)
    max_body_bytes: int = variable("DRIFTLOOP_MAX_BODY_BYTES", env.POSITIVE_INT, default=1 << 20)
    # The capture sink, one of capture.SINK_NAMES: "log" writes capture lines that the log group's subscription
    # ships to the capture stream (the function itself never calls the capture service).
    capture: str = variable("DRIFTLOOP_CAPTURE", env.choice(SINK_NAMES), default="none")
    # The fraction of predictions captured, drawn per prediction; unset: see ``sample_rate``.
    capture_sample_rate: float | None = variable("DRIFTLOOP_CAPTURE_SAMPLE_RATE", env.FRACTION, default=None)
    # The delivery stream for ground-truth feedback (none: feedback is logged).
    feedback_stream: str | None = variable("DRIFTLOOP_FEEDBACK_STREAM", default=None)
    # Feedback for older predictions is refused.
    feedback_max_age_days: int = variable("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", env.POSITIVE_INT, default=30)
    # The ARN of the secret holding the prediction id keys (functions.inference.id_keys; never the key itself);
    # unset: a key of this process's own.
    id_key_secret: str | None = variable("DRIFTLOOP_ID_KEY_SECRET", default=None)

    @property
    def models_dir(self) -> Path:
        # Resolved where the function runs, never at synth: Lambda's temporary directory (/tmp) is its only
        # writable place, and the local cloud gives each function its own.
        return self.work_dir or Path(tempfile.gettempdir()) / "driftloop-models"

    @property
    def sample_rate(self) -> float:
        # The stack sets the rate only when it captures; a local capture keeps every prediction.
        return 1.0 if self.capture_sample_rate is None else self.capture_sample_rate


@dataclass(frozen=True, kw_only=True)
class KeyRotationSettings(EnvContract):
    """The id key's rotation function (functions.inference.key_rotation): Secrets Manager's event names the secret."""

    description = "prediction id key rotation"
