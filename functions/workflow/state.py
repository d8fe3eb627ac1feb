"""The training state machine's execution state: its shapes and where each part sits, owned here for the state
machine definition (``infra/constructs/training_workflow.py``) and the steps.

The state is one JSON object. The execution input (``trigger``, ``hyperparameters``) is at its root and each
step's result lands under its own key (:data:`GUARD` ... :data:`RELEASE`; a caught error at :data:`ERROR`)::

    {"trigger": {...}, "hyperparameters": {...},
     "guard": GuardResult, "assembly_plan": AssemblyPlan, "assembly_query": AssemblyQuery, "assembly": {...},
     "prepare": PrepareResult, "training": TrainingResult, "registration": RegistrationResult,
     "approval": Approval, "promotion": PromotionResult,
     "rejection": RejectionResult, "failure": FailureResult, "release": ReleaseResult,
     "error": StepError}

Each part parses from that JSON with :class:`WorkflowError`s that name the path at fault, and the results a step
returns write themselves back (``to_json``) with the keys, in the order, the integration tests and the CLI read.
Guard, RecordFailure and Release get the execution's id beside the state (:class:`StepEvent`); the approval
request gets the task token (:class:`ApprovalEvent`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from functions.common.text_values import parse_time
from functions.workflow.errors import WorkflowError
from functions.workflow.triggers import INPUT_KEY as TRIGGER_KEY
from functions.workflow.triggers import Trigger

# Where each step's result lands in the state (the Lambda tasks' ResultPath).
GUARD = "guard"
# Assemble's plan (AssembleData), the Athena UNLOAD's result (AssembleFeedback), then the training set.
ASSEMBLY_PLAN = "assembly_plan"
ASSEMBLY_QUERY = "assembly_query"
ASSEMBLY = "assembly"
HOLDOUT = "holdout"
EVALUATION = "evaluation"
PREPARE = "prepare"
TRAINING = "training"
REGISTRATION = "registration"
APPROVAL = "approval"
PROMOTION = "promotion"
REJECTION = "rejection"
FAILURE = "failure"
RELEASE = "release"
# The error a Catch puts into the state ({"Error", "Cause"}), and the errors of the failure path's own steps,
# kept beside it so that the run still fails with the original one.
ERROR = "error"
RECORD_FAILURE_ERROR = "record_failure_error"
RELEASE_ERROR = "release_error"
NOTIFY_FAILURE_ERROR = "notify_failure_error"
HYPERPARAMETERS_KEY = "hyperparameters"

# The payload fields of the steps that get more than the state (StepEvent, ApprovalEvent).
EXECUTION_ID = "execution_id"
STARTED_AT = "started_at"
STATE = "state"
TOKEN = "token"  # noqa: S105 (the name of a payload field)

# The errors the approval state's Catch puts at $.approval: an operator's `driftloop deny`, or no answer in time.
APPROVAL_DENIED = "driftloop.ApprovalDenied"
APPROVAL_TIMEOUT = "States.Timeout"


def path(*names: str) -> str:
    """The JSONPath of a place in the state: ``path(GUARD, "acquired")`` is ``$.guard.acquired``."""
    return ".".join(("$", *names))


class _Object:
    """A JSON object at ``where`` (a JSONPath, for the errors), read field by field with its type checked."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise WorkflowError(f"{where} must be an object, got {raw!r}")
        self.raw, self.where = raw, where

    def _get(self, name: str, kinds: tuple[type, ...], what: str, required: bool) -> Any:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise WorkflowError(f"{self.where}.{name} is missing")
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise WorkflowError(f"{self.where}.{name} must be {what}, got {value!r}")
        return value

    def text(self, name: str) -> str:
        return str(self._get(name, (str,), "a string", True))

    def optional_text(self, name: str) -> str | None:
        value: str | None = self._get(name, (str,), "a string", False)
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool:
        value = self._get(name, (bool,), "true or false", default is None)
        return bool(default) if value is None else bool(value)

    def optional_number(self, name: str) -> float | None:
        value: float | None = self._get(name, (int, float), "a number", False)
        return value

    def optional_int(self, name: str) -> int | None:
        value: int | None = self._get(name, (int,), "an integer", False)
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        value = self._get(name, (Mapping,), "an object", False)
        return None if value is None else dict(value)

    def items(self, name: str) -> list[Any]:
        return list(self._get(name, (list,), "a list", False) or [])

    def texts(self, name: str) -> tuple[str, ...]:
        values = self.items(name)
        if not all(isinstance(value, str) for value in values):
            raise WorkflowError(f"{self.where}.{name} must be a list of strings, got {values!r}")
        return tuple(values)

    def trigger(self, name: str) -> Trigger | None:
        value = self.raw.get(name)
        return None if value is None else Trigger.parse(value)


class _Part:
    """A step's result: ``KEY`` is where it lands in the state."""

    KEY: ClassVar[str]

    @classmethod
    def path(cls, *fields: str) -> str:
        """``$.<KEY>`` or the path of one of its fields, which must be one of the result's own."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = [name for name in fields[:1] if name not in names]
        if unknown:
            raise KeyError(f"{cls.__name__} has no field {unknown[0]!r}")
        return path(cls.KEY, *fields)


@dataclass(frozen=True)
class ExecutionInput:
    """What a run is started with: its trigger (none: a manual start) and hyperparameter overrides."""

    trigger: Trigger
    # Overrides as given (strings or numbers); which names may be overridden is the steps' rule.
    hyperparameters: Mapping[str, str | int | float] | None = None

    # The only keys a run may be started with: any other would sit in the state beside the steps' results, where
    # a step could take it for one (an "approval" would reach Promote's decision when no Approval state runs).
    KEYS: ClassVar[tuple[str, ...]] = (TRIGGER_KEY, HYPERPARAMETERS_KEY)

    @classmethod
    def parse_start(cls, state: Mapping[str, Any]) -> ExecutionInput:
        """The execution input as the first state (Guard) gets it, the whole state: refused when it holds any key
        but :data:`KEYS`."""
        unknown = sorted(str(key) for key in state if key not in cls.KEYS)
        if unknown:
            raise WorkflowError(
                f"execution input {', '.join(map(repr, unknown))} refused: a run is started with "
                f"{' and '.join(map(repr, cls.KEYS))} only; the steps' results (the approval among them) come from "
                "the steps"
            )
        return cls.parse(state)

    @classmethod
    def parse(cls, state: Mapping[str, Any]) -> ExecutionInput:
        trigger = Trigger.parse(state.get(TRIGGER_KEY))
        overrides = state.get(HYPERPARAMETERS_KEY)
        if overrides is not None and not isinstance(overrides, Mapping):
            raise WorkflowError(
                f"execution input '{HYPERPARAMETERS_KEY}' must be an object of strings or numbers, got {overrides!r}"
            )
        for name, value in (overrides or {}).items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise WorkflowError(
                    f"execution input hyperparameter {name!r} must be a string or a number, got {value!r}"
                )
        return cls(trigger, None if overrides is None else dict(overrides))


@dataclass(frozen=True)
class GuardResult(_Part):
    """Guard's result: the lock taken (``version``, ``started_at``) or why the run is skipped (``reason``).

    A run's later steps read the version, the execution id and the trigger from here.
    """

    KEY = GUARD

    acquired: bool
    execution_id: str | None
    trigger: Trigger | None
    decision_id: str | None
    started_at: str | None = None
    version: str | None = None
    reason: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> GuardResult:
        read = _Object(raw, path(GUARD))
        return cls(
            acquired=read.boolean("acquired", default=False),
            execution_id=read.optional_text(EXECUTION_ID),
            trigger=read.trigger("trigger"),
            decision_id=read.optional_text("decision_id"),
            started_at=read.optional_text(STARTED_AT),
            version=read.optional_text("version"),
            reason=read.optional_text("reason"),
        )

    def to_json(self) -> dict[str, Any]:
        head = {
            "acquired": self.acquired,
            EXECUTION_ID: self.execution_id,
            "trigger": None if self.trigger is None else self.trigger.to_json(),
        }
        if self.reason is not None:
            return {**head, "reason": self.reason, "decision_id": self.decision_id}
        return {**head, STARTED_AT: self.started_at, "version": self.version, "decision_id": self.decision_id}


@dataclass(frozen=True)
class AssemblyPlan(_Part):
    """AssembleData's result: the base data copied and counted, and, when feedback rows are to be added, the UNLOAD
    statement the AssembleFeedback state runs (absent: no feedback query) and what FinishAssembly counts with."""

    KEY = ASSEMBLY_PLAN

    prefix: str
    uri: str
    base_fingerprint: str
    counts: dict[str, Any]
    unload: str | None = None
    feedback: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Any) -> AssemblyPlan:
        read = _Object(raw, path(ASSEMBLY_PLAN))
        return cls(
            prefix=read.text("prefix"),
            uri=read.text("uri"),
            base_fingerprint=read.text("base_fingerprint"),
            counts=read.mapping("counts") or {},
            unload=read.optional_text("unload"),
            feedback=read.mapping("feedback"),
        )

    def to_json(self) -> dict[str, Any]:
        head = {
            "prefix": self.prefix,
            "uri": self.uri,
            "base_fingerprint": self.base_fingerprint,
            "counts": self.counts,
        }
        # Absent, not null: the state machine's Choice tests whether the statement is present.
        return head if self.unload is None else {**head, "unload": self.unload, "feedback": self.feedback}


@dataclass(frozen=True)
class AssemblyQuery(_Part):
    """What the AssembleFeedback state keeps of the finished UNLOAD (:data:`SELECTOR`)."""

    KEY = ASSEMBLY_QUERY
    # The Athena task's ResultSelector: GetQueryExecution's fields.
    SELECTOR: ClassVar[dict[str, Any]] = {
        "QueryExecutionId.$": "$.QueryExecution.QueryExecutionId",
        "DataScannedInBytes.$": "$.QueryExecution.Statistics.DataScannedInBytes",
    }

    query_execution_id: str
    scanned_bytes: int | None = None

    @classmethod
    def parse(cls, raw: Any) -> AssemblyQuery:
        read = _Object(raw, path(ASSEMBLY_QUERY))
        return cls(read.text("QueryExecutionId"), read.optional_int("DataScannedInBytes"))


@dataclass(frozen=True)
class AssemblyResult(_Part):
    """What Prepare and Register read of Assemble's result (``functions/workflow/assembly.py`` writes it)."""

    KEY = ASSEMBLY

    prefix: str | None
    uri: str | None = None
    manifest: str | None = None
    fingerprint: str | None = None
    object_count: int | None = None
    counts: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Any) -> AssemblyResult:
        read = _Object(raw, path(ASSEMBLY))
        return cls(
            prefix=read.optional_text("prefix"),
            uri=read.optional_text("uri"),
            manifest=read.optional_text("manifest"),
            fingerprint=read.optional_text("fingerprint"),
            object_count=read.optional_int("object_count"),
            counts=read.mapping("counts"),
        )


@dataclass(frozen=True)
class HoldoutResult(_Part):
    """HoldOut's result (``functions/workflow/holdout.py``): where the held-out rows are, and the rows kept for
    training and held out, trusted (``base``) and feedback."""

    KEY = HOLDOUT

    folder: str
    counts: dict[str, Any]

    @classmethod
    def parse(cls, raw: Any) -> HoldoutResult:
        read = _Object(raw, path(HOLDOUT))
        return cls(folder=read.text("folder"), counts=read.mapping("counts") or {})

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "counts": self.counts}


@dataclass(frozen=True)
class EvaluationResult(_Part):
    """Evaluate's result (``functions/workflow/evaluation.py``): where it wrote the evaluation the gate judges,
    and what it found (Register re-reads the file and recomputes the verdict under the pinned settings)."""

    KEY = EVALUATION

    key: str
    passed: bool
    held: bool
    scored_rows: int
    trusted_rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "passed": self.passed,
            "held": self.held,
            "scored_rows": self.scored_rows,
            "trusted_rows": self.trusted_rows,
        }


@dataclass(frozen=True)
class ChampionRef:
    """The champion a run trained against."""

    version: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class PrepareResult(_Part):
    """The training job Prepare names and the request the Train state sends (its paths read these fields)."""

    KEY = PREPARE

    version: str | None
    training_job_name: str | None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    input_data_config: list[dict[str, Any]] = field(default_factory=list)
    output_path: str | None = None
    champion: ChampionRef | None = None
    trigger: Trigger | None = None

    @classmethod
    def parse(cls, raw: Any) -> PrepareResult:
        read = _Object(raw, path(PREPARE))
        champion = read.mapping("champion")
        hyperparameters = read.mapping("hyperparameters") or {}
        if not all(isinstance(value, str) for value in hyperparameters.values()):
            raise WorkflowError(f"{path(PREPARE, 'hyperparameters')} must be an object of strings")
        return cls(
            version=read.optional_text("version"),
            training_job_name=read.optional_text("training_job_name"),
            hyperparameters=hyperparameters,
            input_data_config=read.items("input_data_config"),
            output_path=read.optional_text("output_path"),
            champion=None if champion is None else _champion(champion),
            trigger=read.trigger("trigger"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "training_job_name": self.training_job_name,
            "hyperparameters": self.hyperparameters,
            "input_data_config": self.input_data_config,
            "output_path": self.output_path,
            "champion": None if self.champion is None else self.champion.to_json(),
            "trigger": None if self.trigger is None else self.trigger.to_json(),
        }


def _champion(raw: Mapping[str, Any]) -> ChampionRef:
    read = _Object(raw, path(PREPARE, "champion"))
    return ChampionRef(read.text("version"), read.text("sha256"))


@dataclass(frozen=True)
class TrainingResult(_Part):
    """What the Train state keeps of the finished SageMaker job (:data:`SELECTOR`)."""

    KEY = TRAINING
    # The Train state's ResultSelector: DescribeTrainingJob's fields, under their SageMaker names.
    SELECTOR: ClassVar[dict[str, Any]] = {
        "TrainingJobName.$": "$.TrainingJobName",
        "TrainingJobStatus.$": "$.TrainingJobStatus",
        "ModelArtifacts": {"S3ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"},
        "FinalMetricDataList.$": "$.FinalMetricDataList",
    }

    training_job_name: str
    model_artifacts: str
    final_metrics: list[Any]

    @classmethod
    def parse(cls, raw: Any) -> TrainingResult:
        read = _Object(raw, path(TRAINING))
        artifacts = _Object(read.raw.get("ModelArtifacts"), path(TRAINING, "ModelArtifacts"))
        return cls(
            training_job_name=read.text("TrainingJobName"),
            model_artifacts=artifacts.text("S3ModelArtifacts"),
            final_metrics=read.items("FinalMetricDataList"),
        )


@dataclass(frozen=True)
class RegistrationResult(_Part):
    """Register's result: the version, the gate's verdict (``passed`` decides the GatePassed? choice) and the
    metric it compared."""

    KEY = REGISTRATION

    version: str
    passed: bool
    reasons: tuple[str, ...] = ()
    # Held for a person's approval (gate.Verdict.held, never with passed): the route to the approval step.
    held: bool = False
    job_verdict_differs: bool = False
    metric: str | None = None
    challenger: float | None = None
    champion: float | None = None
    champion_version: str | None = None
    decision_id: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> RegistrationResult:
        read = _Object(raw, path(REGISTRATION))
        return cls(
            version=read.text("version"),
            passed=read.boolean("passed"),
            reasons=read.texts("reasons"),
            held=read.boolean("held", default=False),
            job_verdict_differs=read.boolean("job_verdict_differs", default=False),
            metric=read.optional_text("metric"),
            challenger=read.optional_number("challenger"),
            champion=read.optional_number("champion"),
            champion_version=read.optional_text("champion_version"),
            decision_id=read.optional_text("decision_id"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "held": self.held,
            "job_verdict_differs": self.job_verdict_differs,
            "metric": self.metric,
            "challenger": self.challenger,
            "champion": self.champion,
            "champion_version": self.champion_version,
            "decision_id": self.decision_id,
        }


@dataclass(frozen=True)
class Approval(_Part):
    """``$.approval``: the operator's answer, or the error the Approval state's Catch put there when it sent the run
    to Reject (``{"Error", "Cause"}``). ``recorded`` is the value as it came.

    ``driftloop approve`` answers :meth:`approving` (``{"approved": true, "note", "proof"}``); ``driftloop deny``
    fails the task with :data:`APPROVAL_DENIED` and :meth:`denying` as the cause (``{"reason", "proof"}`` as JSON).
    Either proof is ``functions.workflow.approver``'s, which the step after verifies.
    """

    KEY = APPROVAL
    NOTE: ClassVar[str] = "note"
    REASON: ClassVar[str] = "reason"
    PROOF: ClassVar[str] = "proof"

    recorded: Any

    @classmethod
    def approving(cls, note: str | None, proof: str) -> dict[str, Any]:
        """The task's output for an approval."""
        return {"approved": True, cls.NOTE: note, cls.PROOF: proof}

    @classmethod
    def denying(cls, reason: str, proof: str) -> str:
        """The task failure's cause for a denial."""
        return json.dumps({cls.REASON: reason, cls.PROOF: proof})

    @property
    def approved(self) -> bool:
        return isinstance(self.recorded, Mapping) and self.recorded.get("approved") is True

    @property
    def denied(self) -> bool:
        error = self.error
        return error is not None and error.error == APPROVAL_DENIED

    @property
    def error(self) -> StepError | None:
        """The Catch's error, if the approval state sent the run to Reject."""
        if not isinstance(self.recorded, Mapping) or StepError.NAME not in self.recorded:
            return None
        return StepError(str(self.recorded[StepError.NAME]), self.recorded.get(StepError.CAUSE))

    @property
    def words(self) -> str | None:
        """The approval's note, or the denial's reason (a cause that is no denial's JSON, as it came)."""
        value = self._answer().get(self.REASON if self.denied else self.NOTE)
        if value is None and self.denied:
            cause = self.recorded.get(StepError.CAUSE)
            return None if cause is None else str(cause)
        return value if isinstance(value, str) else None

    @property
    def proof(self) -> str | None:
        value = self._answer().get(self.PROOF)
        return value if isinstance(value, str) else None

    def _answer(self) -> Mapping[str, Any]:
        """The answer's fields: the output of an approval, the JSON cause of a denial (none for anything else)."""
        if self.approved:
            answer: Mapping[str, Any] = self.recorded
            return answer
        if self.denied:
            try:
                cause = json.loads(self.recorded.get(StepError.CAUSE) or "")
            except (TypeError, ValueError):
                return {}
            return cause if isinstance(cause, Mapping) else {}
        return {}


@dataclass(frozen=True)
class PromotionResult(_Part):
    """Promote's result: ``promoted`` (read by the Outcome choice), or superseded with the live version."""

    KEY = PROMOTION

    promoted: bool
    version: str | None = None
    decision_id: str | None = None
    previous_version: str | None = None
    live_version: str | None = None
    reason: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> PromotionResult:
        read = _Object(raw, path(PROMOTION))
        return cls(
            promoted=read.boolean("promoted"),
            version=read.optional_text("version"),
            decision_id=read.optional_text("decision_id"),
            previous_version=read.optional_text("previous_version"),
            live_version=read.optional_text("live_version"),
            reason=read.optional_text("reason"),
        )

    def to_json(self) -> dict[str, Any]:
        if self.promoted:
            return {
                "promoted": True,
                "version": self.version,
                "previous_version": self.previous_version,
                "decision_id": self.decision_id,
            }
        return {
            "promoted": False,
            "superseded": True,
            "version": self.version,
            "live_version": self.live_version,
            "reason": self.reason,
            "decision_id": self.decision_id,
        }


@dataclass(frozen=True)
class RejectionResult(_Part):
    KEY = REJECTION

    version: str
    decision_id: str
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "decision_id": self.decision_id, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class FailureResult(_Part):
    """RecordFailure's result; ``message`` is what the failure notification says."""

    KEY = FAILURE

    decision_id: str
    version: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "version": self.version, "message": self.message}


@dataclass(frozen=True)
class ReleaseResult(_Part):
    KEY = RELEASE

    released: bool
    outcome: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"released": self.released, "outcome": self.outcome, "message": self.message}


@dataclass(frozen=True)
class StepError:
    """What a Catch puts into the state: Step Functions' error name and its cause (for a Lambda error, a JSON
    string with ``errorMessage``)."""

    NAME: ClassVar[str] = "Error"
    CAUSE: ClassVar[str] = "Cause"

    error: str | None
    cause: Any

    @classmethod
    def parse(cls, raw: Any) -> StepError:
        read = _Object(raw, path(ERROR))
        return cls(read.optional_text(cls.NAME), read.raw.get(cls.CAUSE))

    @classmethod
    def path(cls, *name: str) -> str:
        """``$.error``, ``$.error.Error`` or ``$.error.Cause``."""
        if not set(name) <= {cls.NAME, cls.CAUSE}:
            raise KeyError(name)
        return path(ERROR, *name)


@dataclass(frozen=True)
class RunState:
    """The execution state as the steps read it: every result present, parsed.

    The execution input stays as it came (:meth:`execution_input` parses it): RecordFailure records a run whose
    input was refused, with that input.
    """

    raw: Mapping[str, Any]
    guard: GuardResult | None = None
    assembly_plan: AssemblyPlan | None = None
    assembly_query: AssemblyQuery | None = None
    assembly: AssemblyResult | None = None
    holdout: HoldoutResult | None = None
    prepare: PrepareResult | None = None
    training: TrainingResult | None = None
    registration: RegistrationResult | None = None
    approval: Approval | None = None
    promotion: PromotionResult | None = None
    error: StepError | None = None

    @classmethod
    def parse(cls, raw: Any) -> RunState:
        state = _Object(raw, "$").raw

        def part[T](key: str, parse: Callable[[Any], T]) -> T | None:
            return None if state.get(key) is None else parse(state[key])

        return cls(
            raw=state,
            guard=part(GUARD, GuardResult.parse),
            assembly_plan=part(ASSEMBLY_PLAN, AssemblyPlan.parse),
            assembly_query=part(ASSEMBLY_QUERY, AssemblyQuery.parse),
            assembly=part(ASSEMBLY, AssemblyResult.parse),
            holdout=part(HOLDOUT, HoldoutResult.parse),
            prepare=part(PREPARE, PrepareResult.parse),
            training=part(TRAINING, TrainingResult.parse),
            registration=part(REGISTRATION, RegistrationResult.parse),
            approval=part(APPROVAL, Approval),
            promotion=part(PROMOTION, PromotionResult.parse),
            # An empty error object is no error (Step Functions never writes one).
            error=StepError.parse(state[ERROR]) if state.get(ERROR) else None,
        )

    def execution_input(self) -> ExecutionInput:
        return ExecutionInput.parse(self.raw)

    @property
    def rejected(self) -> bool:
        return bool(self.raw.get(REJECTION))

    def trigger(self) -> Trigger:
        """The run's trigger: Guard's copy, else the execution input's (Guard failed or has not run yet)."""
        if self.guard is not None and self.guard.trigger is not None:
            return self.guard.trigger
        return Trigger.parse(self.raw.get(TRIGGER_KEY))

    def version(self) -> str:
        """The run's version, which Guard names when it takes the lock."""
        version = None if self.guard is None else self.guard.version
        if not version:
            raise WorkflowError(
                f"no version in the state ({GuardResult.path('version')}): Guard names it when the run takes the lock"
            )
        return version

    @property
    def execution_id(self) -> str | None:
        return None if self.guard is None else self.guard.execution_id


@dataclass(frozen=True)
class StepEvent:
    """The payload of Guard, RecordFailure and Release: ``{"execution_id": $$.Execution.Id, "state": $}``, for Guard
    also ``"started_at": $$.Execution.StartTime``. The execution id names the run even when Guard left no result."""

    execution_id: str | None
    state: RunState
    started_at: datetime | None = None

    @staticmethod
    def payload(execution_id: str, state: Any, started_at: str | None = None) -> dict[str, Any]:
        """The payload object of such a task, from the context object's values (JSONPath tokens in CDK)."""
        payload = {EXECUTION_ID: execution_id, STATE: state}
        return payload if started_at is None else {**payload, STARTED_AT: started_at}

    @classmethod
    def parse(cls, raw: Any) -> StepEvent:
        event = _Object(raw, "the event")
        execution = event.raw.get(EXECUTION_ID)
        return cls(
            execution_id=str(execution) if execution else None,
            state=RunState.parse(event.raw.get(STATE) or {}),
            started_at=parse_time(event.raw.get(STARTED_AT)),
        )

    def require_execution(self, step: str) -> str:
        if not self.execution_id:
            raise WorkflowError(f"{step} needs the execution id ($$.Execution.Id) as '{EXECUTION_ID}'")
        return self.execution_id


@dataclass(frozen=True)
class ApprovalEvent:
    """The approval request's payload (a ``.waitForTaskToken`` invoke): ``{"token": $$.Task.Token, "state": $}``."""

    token: str
    state: RunState

    @staticmethod
    def payload(token: str, state: Any) -> dict[str, Any]:
        return {TOKEN: token, STATE: state}

    @classmethod
    def parse(cls, raw: Any) -> ApprovalEvent:
        event = _Object(raw, "the event")
        token = event.raw.get(TOKEN)
        if not isinstance(token, str) or not token:
            raise WorkflowError(f"RequestApproval needs the task token ($$.Task.Token) as '{TOKEN}'")
        return cls(token, RunState.parse(event.raw.get(STATE) or {}))
