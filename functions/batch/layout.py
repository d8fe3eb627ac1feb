"""Where batch scoring reads and writes in the data bucket: the one owner of these keys (the function, the stack's
grants and the CLI use it).

- inputs: any CSV object under ``batch/input/`` (a run scores one prefix below it);
- predictions: ``batch/output/<the input key below batch/input/>.predictions.jsonl``: the input's tree mirrored,
  so each object's predictions lie beside where the input lies, and re-running a prefix never reads an output;
- run records: ``batch/runs/<run>/objects/<hash of the input key>.json`` (one per scored object) and
  ``batch/runs/<run>/summary.json``; the Map's own result files (Step Functions' ResultWriter) go under
  ``batch/runs/map/``.

The prefixes are fixed rather than configured: the IAM grants are per prefix, and none of them may nest in the
configured data prefixes (``captures/``, ``feedback/`` and the others never start with ``batch/``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# What the batch function scores; any other object under the prefix is reported as skipped.
SCORED_SUFFIXES = (".csv",)
PREDICTIONS_SUFFIX = ".predictions.jsonl"


@dataclass(frozen=True)
class BatchLayout:
    input_prefix: str = "batch/input/"
    output_prefix: str = "batch/output/"
    runs_prefix: str = "batch/runs/"

    @property
    def map_results_prefix(self) -> str:
        return self.runs_prefix + "map/"

    def output_folder(self, input_prefix: str) -> str:
        """Where the predictions of the objects under ``input_prefix`` go."""
        return self.output_prefix + input_prefix.removeprefix(self.input_prefix)

    def output_key(self, input_key: str) -> str:
        return self.output_folder(input_key) + PREDICTIONS_SUFFIX

    def result_key(self, run: str, input_key: str) -> str:
        digest = hashlib.sha256(input_key.encode()).hexdigest()[:40]
        return f"{self.runs_prefix}{run}/objects/{digest}.json"

    def summary_key(self, run: str) -> str:
        return f"{self.runs_prefix}{run}/summary.json"


BATCH = BatchLayout()


def is_scored(key: str) -> bool:
    """Whether an object under the input prefix is scored (folder markers and other formats are skipped)."""
    return key.lower().endswith(SCORED_SUFFIXES)
