"""The inference service's settings: read once from the environment, checked at start.

A bad setting stops the function at start with every problem listed, rather than surfacing later as
puzzling request failures. Having no model configured is not a setting error: the API then answers 503.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from functions.common import text_values
from functions.common.registry import DEFAULT_PREFIX as DEFAULT_REGISTRY_PREFIX
from functions.inference.capture import SINK_NAMES

T = TypeVar("T")


class ConfigError(ValueError):
    """One or more environment variables hold invalid values."""


@dataclass(frozen=True)
class Config:
    # DRIFTLOOP_MODEL_DIR: an extracted bundle to serve (local runs, tests); takes precedence over the registry.
    model_dir: Path | None = None
    # DRIFTLOOP_MODEL_BUCKET / DRIFTLOOP_REGISTRY_PREFIX: serve the registry's champion.
    model_bucket: str | None = None
    registry_prefix: str = DEFAULT_REGISTRY_PREFIX
    # DRIFTLOOP_REFRESH_SECONDS: how often, at most, the champion pointer is re-read.
    refresh_seconds: float = 60.0
    # DRIFTLOOP_WORK_DIR: where downloaded bundles are extracted (Lambda: only /tmp is writable).
    work_dir: Path = Path(tempfile.gettempdir()) / "driftloop-models"
    # DRIFTLOOP_MAX_INSTANCES / DRIFTLOOP_MAX_BODY_BYTES: request limits.
    max_instances: int = 100
    max_body_bytes: int = 1 << 20
    # DRIFTLOOP_CAPTURE: the capture sink, one of capture.SINK_NAMES; "firehose" needs DRIFTLOOP_CAPTURE_STREAM.
    capture: str = "none"
    capture_stream: str | None = None
    # DRIFTLOOP_CAPTURE_SAMPLE_RATE: the fraction of predictions captured, 0 to 1, drawn per prediction.
    capture_sample_rate: float = 1.0
    # DRIFTLOOP_FEEDBACK_STREAM: the delivery stream for ground-truth feedback (none: feedback is logged).
    feedback_stream: str | None = None
    # DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS: feedback for older predictions is refused.
    feedback_max_age_days: int = 30
    # DRIFTLOOP_SERVICE_NAME: the Service dimension of the metrics and logs.
    service: str = "driftloop-inference"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        problems: list[str] = []

        def read(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError as exc:
                problems.append(f"{name}={raw!r}: {exc}")
                return default

        config = cls(
            model_dir=read("DRIFTLOOP_MODEL_DIR", Path, None),
            model_bucket=read("DRIFTLOOP_MODEL_BUCKET", str, None),
            registry_prefix=read("DRIFTLOOP_REGISTRY_PREFIX", str, cls.registry_prefix),
            refresh_seconds=read("DRIFTLOOP_REFRESH_SECONDS", text_values.non_negative, cls.refresh_seconds),
            work_dir=read("DRIFTLOOP_WORK_DIR", Path, cls.work_dir),
            max_instances=read("DRIFTLOOP_MAX_INSTANCES", text_values.positive_int, cls.max_instances),
            max_body_bytes=read("DRIFTLOOP_MAX_BODY_BYTES", text_values.positive_int, cls.max_body_bytes),
            capture=read("DRIFTLOOP_CAPTURE", text_values.choice(SINK_NAMES), cls.capture),
            capture_stream=read("DRIFTLOOP_CAPTURE_STREAM", str, None),
            capture_sample_rate=read("DRIFTLOOP_CAPTURE_SAMPLE_RATE", text_values.fraction, cls.capture_sample_rate),
            feedback_stream=read("DRIFTLOOP_FEEDBACK_STREAM", str, None),
            feedback_max_age_days=read(
                "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", text_values.positive_int, cls.feedback_max_age_days
            ),
            service=read("DRIFTLOOP_SERVICE_NAME", str, cls.service),
        )
        if config.capture == "firehose" and not config.capture_stream:
            problems.append("DRIFTLOOP_CAPTURE=firehose needs DRIFTLOOP_CAPTURE_STREAM (the delivery stream name)")
        if problems:
            raise ConfigError("invalid inference settings:\n" + "\n".join(f"- {p}" for p in problems))
        return config
