"""Guard and Release: the run lock and the cooldown every trigger obeys, against moto's S3 conditional writes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.registry import Registry, RegistryLayout
from functions.workflow import steps
from functions.workflow.lock import RunLock
from functions.workflow.state import RunState, StepEvent
from tests.plugins.aws import MODEL_BUCKET
from tests.workflow.support import settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOCK = RegistryLayout("registry/").lock_key
NO_COOLDOWN = settings(cooldown_minutes=0, lock_timeout_seconds=7200)
ALARM = {"source": "alarm", "alarm_name": "driftloop-dev-drift", "reason": "PSI 0.31 > 0.2"}


def guard(
    registry: Registry,
    s3: S3Client,
    execution: str,
    at: datetime,
    trigger: dict[str, Any] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    state = {} if trigger is None else {"trigger": trigger}
    event = {"execution_id": execution, "started_at": at.isoformat().replace("+00:00", "Z"), "state": state}
    return steps.guard(
        settings(**changes) if changes else NO_COOLDOWN, s3, registry, StepEvent.parse(event), now=at
    ).to_json()


def release(s3: S3Client, execution: str, at: datetime, state: dict[str, Any] | None = None) -> dict[str, Any]:
    event = {"execution_id": execution, "state": state if state is not None else {"rejection": {"version": "v"}}}
    return steps.release(NO_COOLDOWN, s3, StepEvent.parse(event), now=at).to_json()


def lock_object(s3: S3Client) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=MODEL_BUCKET, Key=LOCK)["Body"].read()))


def test_the_first_run_takes_the_lock_names_the_version_and_records_its_trigger(
    s3: S3Client, registry: Registry
) -> None:
    result = guard(registry, s3, "exec-a", T0, ALARM)

    assert result["acquired"] is True
    assert result["version"].startswith("v20260301-120000-")
    assert lock_object(s3) == {
        "state": "held",
        "execution": "exec-a",
        "started_at": T0.isoformat(),
        "trigger": ALARM,
        "version": result["version"],
        "ended_at": None,
        "outcome": None,
    }
    [decision] = registry.decisions()
    assert (decision.action, decision.version, decision.id) == ("triggered", result["version"], result["decision_id"])
    assert decision.details == {"trigger": ALARM, "execution": "exec-a"}
    assert decision.reasons == ("run started by trigger alarm (driftloop-dev-drift; PSI 0.31 > 0.2)",)


def test_a_trigger_during_a_run_is_skipped_and_recorded_with_its_own_trigger(s3: S3Client, registry: Registry) -> None:
    guard(registry, s3, "exec-a", T0, {"source": "schedule"})

    result = guard(registry, s3, "exec-b", T0 + timedelta(minutes=20), ALARM)

    assert result["acquired"] is False and "version" not in result
    skipped = registry.decisions()[-1]
    assert (skipped.action, skipped.version) == ("skipped", None)
    assert skipped.details == {"trigger": ALARM, "execution": "exec-b"}
    assert skipped.reasons == (
        f"another run is in progress: execution exec-a (trigger: schedule, started {T0.isoformat()})",
    )
    assert lock_object(s3)["execution"] == "exec-a"


@pytest.mark.parametrize("history", ["no lock yet", "after a released run"])
def test_of_two_concurrent_guards_exactly_one_takes_the_lock(s3: S3Client, registry: Registry, history: str) -> None:
    if history == "after a released run":
        guard(registry, s3, "exec-0", T0 - timedelta(hours=3))
        release(s3, "exec-0", T0 - timedelta(hours=2))
    barrier = threading.Barrier(2)
    results: dict[str, dict[str, Any]] = {}

    def run(execution: str) -> None:
        barrier.wait()
        results[execution] = guard(registry, s3, execution, T0, {"source": "alarm", "alarm_name": execution})

    threads = [threading.Thread(target=run, args=(name,)) for name in ("exec-left", "exec-right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(result["acquired"] for result in results.values()) == [False, True]
    [winner] = [name for name, result in results.items() if result["acquired"]]
    assert lock_object(s3)["execution"] == winner
    decisions = [d for d in registry.decisions() if d.details.get("execution") in results]
    assert sorted(d.action for d in decisions) == ["skipped", "triggered"]
    [loser_decision] = [d for d in decisions if d.action == "skipped"]
    assert loser_decision.details["trigger"]["alarm_name"] != winner
    assert winner in loser_decision.reasons[0]


def test_a_guard_that_loses_the_conditional_write_is_skipped_and_names_the_winner(
    s3: S3Client, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = RunLock.read

    def read_then_a_rival_writes(self: RunLock) -> Any:
        seen = real_read(self)
        monkeypatch.setattr(RunLock, "read", real_read)
        assert guard(registry, s3, "exec-rival", T0)["acquired"] is True
        return seen

    monkeypatch.setattr(RunLock, "read", read_then_a_rival_writes)

    result = guard(registry, s3, "exec-late", T0, ALARM)

    assert result["acquired"] is False
    assert result["reason"].startswith("another run took the lock at the same time: execution exec-rival")
    assert lock_object(s3)["execution"] == "exec-rival"
    assert [d.action for d in registry.decisions()] == ["triggered", "skipped"]


def test_no_run_starts_within_the_cooldown_after_the_previous_run_ended(s3: S3Client, registry: Registry) -> None:
    guard(registry, s3, "exec-a", T0, cooldown_minutes=60)
    ended = T0 + timedelta(minutes=45)
    assert release(s3, "exec-a", ended)["released"] is True

    early = guard(registry, s3, "exec-b", ended + timedelta(minutes=59), ALARM, cooldown_minutes=60)
    later = guard(registry, s3, "exec-c", ended + timedelta(minutes=60), ALARM, cooldown_minutes=60)

    assert early["acquired"] is False
    assert early["reason"] == (
        f"cooldown: the previous run, execution exec-a (rejected), ended {ended.isoformat()}; no new run starts "
        f"within 60 minutes of a run's end, i.e. before {(ended + timedelta(minutes=60)).isoformat()}"
    )
    skipped = [d for d in registry.decisions() if d.action == "skipped"]
    assert [d.details["execution"] for d in skipped] == ["exec-b"]
    assert skipped[0].reasons == (early["reason"],) and skipped[0].details["trigger"] == ALARM
    assert later["acquired"] is True and lock_object(s3)["execution"] == "exec-c"


def test_a_lock_older_than_the_workflow_timeout_is_stale_and_taken_over(s3: S3Client, registry: Registry) -> None:
    first = guard(registry, s3, "exec-a", T0)  # then stopped by the state machine timeout: no Release ran
    timeout = timedelta(seconds=NO_COOLDOWN.lock_timeout_seconds)

    still_running = guard(registry, s3, "exec-b", T0 + timeout - timedelta(seconds=1))
    takeover = guard(registry, s3, "exec-c", T0 + timeout)

    assert still_running["acquired"] is False
    assert takeover["acquired"] is True and lock_object(s3)["execution"] == "exec-c"
    triggered = registry.decisions()[-1]
    assert triggered.action == "triggered"
    assert "took over the stale run lock of execution exec-a" in triggered.reasons[1]
    assert triggered.details["stale_lock"]["version"] == first["version"]
    # The stale run's late Release (if it ever came) changes nothing.
    assert release(s3, "exec-a", T0 + timeout + timedelta(minutes=1))["released"] is False
    assert lock_object(s3)["state"] == "held" and lock_object(s3)["execution"] == "exec-c"


def test_the_cooldown_after_a_stale_run_counts_from_its_timeout(s3: S3Client, registry: Registry) -> None:
    guard(registry, s3, "exec-a", T0, cooldown_minutes=30)
    expired = T0 + timedelta(seconds=NO_COOLDOWN.lock_timeout_seconds)

    result = guard(registry, s3, "exec-b", expired + timedelta(minutes=10), cooldown_minutes=30)

    assert result["acquired"] is False
    assert "timed out" in result["reason"] and (expired + timedelta(minutes=30)).isoformat() in result["reason"]


def test_only_the_holder_releases_the_lock_and_stamps_the_end(s3: S3Client, registry: Registry) -> None:
    version = guard(registry, s3, "exec-a", T0)["version"]

    intruder = release(s3, "exec-b", T0 + timedelta(minutes=5))
    assert intruder["released"] is False and "exec-b does not hold the run lock" in intruder["message"]
    assert lock_object(s3)["state"] == "held"

    state = {"promotion": {"promoted": True, "version": version}}
    owner = release(s3, "exec-a", T0 + timedelta(minutes=50), state)
    assert owner == {"released": True, "outcome": "promoted", "message": "released by exec-a (promoted)"}
    lock = lock_object(s3)
    assert lock["state"] == "released" and lock["execution"] == "exec-a" and lock["version"] == version
    assert lock["ended_at"] == (T0 + timedelta(minutes=50)).isoformat() and lock["outcome"] == "promoted"

    again = release(s3, "exec-a", T0 + timedelta(minutes=51))
    assert again["released"] is False and lock_object(s3)["ended_at"] == lock["ended_at"]


def test_the_failure_path_releases_with_the_context_execution_id_even_without_guards_result(
    s3: S3Client, registry: Registry
) -> None:
    # Guard took the lock, then failed before returning (say, recording the decision failed).
    guard(registry, s3, "exec-a", T0)
    state = {"trigger": {"source": "manual"}, "error": {"Error": "States.TaskFailed", "Cause": "boom"}}

    result = release(s3, "exec-a", T0 + timedelta(minutes=1), state)

    assert result["released"] is True and result["outcome"] == "failed"
    assert lock_object(s3)["outcome"] == "failed"


def test_a_retried_guard_keeps_its_lock_and_version_and_records_nothing_twice(s3: S3Client, registry: Registry) -> None:
    first = guard(registry, s3, "exec-a", T0, ALARM)
    retried = guard(registry, s3, "exec-a", T0 + timedelta(seconds=3), ALARM)

    assert retried["acquired"] is True and retried["version"] == first["version"]
    assert [d.action for d in registry.decisions()] == ["triggered"]


def test_a_run_without_trigger_is_manual_and_a_malformed_trigger_is_refused(s3: S3Client, registry: Registry) -> None:
    assert guard(registry, s3, "exec-a", T0)["trigger"] == {"source": "manual"}
    with pytest.raises(steps.WorkflowError, match="'trigger' must be an object with a 'source'"):
        guard(registry, s3, "exec-b", T0, {"alarm_name": "x"})


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ({"promotion": {"promoted": True}}, "promoted"),
        ({"promotion": {"promoted": False, "superseded": True}}, "superseded"),
        ({"rejection": {"version": "v"}}, "rejected"),
        ({"promotion": {"promoted": True}, "error": {"Error": "X"}}, "failed"),
    ],
)
def test_the_outcome_stamped_on_release_follows_the_path_taken(state: dict[str, Any], outcome: str) -> None:
    assert steps.run_outcome(RunState.parse(state)) == outcome


def test_a_run_that_overrides_a_pinned_setting_fails_before_taking_the_lock_and_the_failure_names_it(
    s3: S3Client, registry: Registry
) -> None:
    state = {"trigger": {"source": "manual"}, "hyperparameters": {"min_improvement": "-1"}}
    event = {"execution_id": "exec-a", "started_at": T0.isoformat(), "state": state}

    with pytest.raises(steps.WorkflowError) as raised:
        steps.guard(NO_COOLDOWN, s3, registry, StepEvent.parse(event), now=T0).to_json()
    # The state machine's Catch hands the error to RecordFailure.
    steps.record_failure(
        registry, RunState.parse({**state, "error": {"Error": "WorkflowError", "Cause": str(raised.value)}})
    ).to_json()

    assert RunLock(s3, MODEL_BUCKET, "registry/", timeout=timedelta(hours=1)).read() is None
    [decision] = registry.decisions()
    assert decision.action == "failed" and decision.version is None
    assert "may not set 'min_improvement'" in decision.reasons[0]
    assert "only algorithm, n_estimators" in decision.reasons[0]


def test_guard_returns_the_runs_start_for_the_steps_that_look_up_its_decisions(
    s3: S3Client, registry: Registry
) -> None:
    first = guard(registry, s3, "exec-a", T0)
    retried = guard(registry, s3, "exec-a", T0 + timedelta(seconds=3))

    assert first["started_at"] == retried["started_at"] == T0.isoformat()


@pytest.mark.parametrize(
    "forged",
    [
        {"approval": {"approved": True, "by": "arn:aws:iam::123456789012:user/mallory"}},
        {"registration": {"version": "v", "passed": True}},
        {"rejection": {"version": "v"}},
    ],
)
def test_a_run_started_with_anything_but_a_trigger_and_hyperparameters_fails_before_taking_the_lock(
    s3: S3Client, registry: Registry, forged: dict[str, Any]
) -> None:
    state = {"trigger": {"source": "manual"}, **forged}
    event = {"execution_id": "exec-a", "started_at": T0.isoformat(), "state": state}

    with pytest.raises(steps.WorkflowError, match=f"execution input '{next(iter(forged))}' refused"):
        steps.guard(NO_COOLDOWN, s3, registry, StepEvent.parse(event), now=T0).to_json()
    assert RunLock(s3, MODEL_BUCKET, "registry/", timeout=timedelta(hours=1)).read() is None
    assert registry.decisions() == []
