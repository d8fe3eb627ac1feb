"""Run the training program on this machine exactly as SageMaker would run the container.

``stage`` lays out a base directory the way SageMaker does before ``docker run <image> train`` (configuration
files with string hyperparameters, one folder per channel); ``run`` then calls the same program the image runs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from functions.common.bundle import ARCHIVE_FILE
from functions.common.gate import EVALUATION_FILE, Confusion
from training.contract import CHAMPION_CHANNEL, TRAIN_CHANNEL, Layout

LOCAL_HOST = "algo-1"


def stage(
    base_dir: Path,
    data: Iterable[Path],
    hyperparameters: Mapping[str, str],
    *,
    champion: Path | None = None,
) -> Layout:
    """Create ``base_dir`` (emptied first) with the ``train`` channel and, if given, the ``champion`` channel."""
    layout = Layout(base_dir)
    if base_dir.exists():
        shutil.rmtree(base_dir)
    layout.config_dir.mkdir(parents=True)
    channels = {TRAIN_CHANNEL: list(data)}
    if champion is not None:
        channels[CHAMPION_CHANNEL] = [champion]
    for name, sources in channels.items():
        target = layout.channel(name)
        target.mkdir(parents=True)
        for source in sources:
            _copy_into(source, target, name)
    layout.hyperparameters.write_text(json.dumps({str(k): str(v) for k, v in hyperparameters.items()}, indent=2))
    layout.resource_config.write_text(json.dumps({"current_host": LOCAL_HOST, "hosts": [LOCAL_HOST]}))
    layout.input_data_config.write_text(
        json.dumps({name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels})
    )
    return layout


def run(layout: Layout, *, log: Path | None = None) -> int:
    """Run the training program in this process; returns its exit code (0: a bundle was written).

    With ``log``, the program's output goes to that file (as SageMaker sends it to CloudWatch Logs).
    """
    from training.program import run as run_program

    if log is None:
        return run_program(layout.base)
    with log.open("w") as stream, redirect_stdout(stream), redirect_stderr(stream):
        return run_program(layout.base)


def summary(layout: Layout) -> str:
    """What a person wants to read after a run: where the failure is (the program's log above already said why),
    or the metrics and the gate verdict."""
    if layout.failure_file.exists():
        return f"training failed: the reason is above, and in {layout.failure_file}"
    evaluation = json.loads((layout.output_data_dir / EVALUATION_FILE).read_text())
    metric = evaluation["metric"]
    lines = [f"bundle written to {layout.model_dir}"]
    positive = evaluation.get("positive_class")
    of = f" (f1 of the positive class {positive!r})" if positive else ""
    lines.append(
        f"holdout metrics{of}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(evaluation["challenger"].items()))
    )
    if evaluation.get("champion"):
        lines.append(f"champion {metric} on the same holdout: {evaluation['champion'][metric]:.4f}")
    lines.extend(_per_class(evaluation))
    lines.append(f"gate on {metric}: {'PASSED' if evaluation['passed'] else 'REJECTED'}")
    lines.extend(f"  - {reason}" for reason in evaluation["reasons"])
    return "\n".join(lines)


def _per_class(evaluation: Mapping[str, Any]) -> list[str]:
    """The challenger's precision, recall, F1 and support per class on the holdout (classification), and the job's
    warnings about classes it misses."""
    confusion = Confusion.from_dict(evaluation.get("challenger_confusion"))
    if confusion is None:
        return []
    width = max(len("class"), *(len(label) for label in confusion.labels))
    lines = [f"per class on the holdout:\n  {'class':<{width}}  precision  recall     f1  support"]
    for i, label in enumerate(confusion.labels):
        predicted = sum(row[i] for row in confusion.counts)
        precision = None if not predicted else confusion.counts[i][i] / predicted
        cells = [_rate(precision, 9), _rate(confusion.recall(label), 6), _rate(confusion.f1(label), 6)]
        lines.append(f"  {label:<{width}}  {'  '.join(cells)}  {sum(confusion.counts[i]):>7}")
    lines.extend(f"warning: {warning}" for warning in evaluation.get("details", {}).get("class_warnings", ()))
    return lines


def _rate(value: float | None, width: int) -> str:
    return f"{'-' if value is None else f'{value:.3f}':>{width}}"


def _copy_into(source: Path, target: Path, channel: str) -> None:
    if not source.exists():
        raise FileNotFoundError(f"{channel} channel source {source} does not exist")
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif channel == CHAMPION_CHANNEL and source.name.endswith(".tar.gz"):
        shutil.copy2(source, target / ARCHIVE_FILE)
    else:
        shutil.copy2(source, target / source.name)
