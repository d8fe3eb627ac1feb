"""What a run trains with: the deployed configuration's hyperparameters and the overrides an execution input may
set."""

from __future__ import annotations

from functions.workflow.errors import WorkflowError
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import HYPERPARAMETERS_KEY, ExecutionInput

# What an execution's input may set in 'hyperparameters': the estimator, its knobs and the split (names of
# training/hyperparameters.py, which the workflow Lambdas do not carry). Everything else (the target, the gate's
# settings, validation thresholds, serving limits) is pinned by the deployed configuration: whoever may start a
# run must not be able to lower the bar its model has to pass.
OVERRIDABLE_HYPERPARAMETERS = (
    "algorithm",
    "n_estimators",
    "max_depth",
    "min_samples_leaf",
    "learning_rate",
    "max_iter",
    "C",
    "random_seed",
    "test_size",
)


def run_hyperparameters(settings: WorkflowSettings, request: ExecutionInput) -> dict[str, str]:
    """The configured defaults with the execution input's overrides (all strings, as SageMaker passes them).

    Only :data:`OVERRIDABLE_HYPERPARAMETERS` may be overridden; any other name fails the run.
    """
    overrides = request.hyperparameters
    if overrides is None:
        return dict(settings.hyperparameters)
    pinned = sorted(name for name in overrides if name not in OVERRIDABLE_HYPERPARAMETERS)
    if pinned:
        raise WorkflowError(
            f"execution input '{HYPERPARAMETERS_KEY}' may not set {', '.join(map(repr, pinned))} (pinned by the "
            f"deployed configuration); only {', '.join(OVERRIDABLE_HYPERPARAMETERS)} may be overridden"
        )
    return {**settings.hyperparameters, **{name: str(value) for name, value in overrides.items()}}
