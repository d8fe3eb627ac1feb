"""The end of a gated version: Promote makes it the champion, Reject records why it is not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.common.gate import Evaluation, GateError
from functions.common.registry import ChampionPointer, Decision, PromotionConflict, Registry, RegistryError
from functions.workflow.approver import Answer
from functions.workflow.errors import NotPassed, WorkflowError
from functions.workflow.model_packages import APPROVED, DETAIL, REJECTED, ModelPackages, package_arn
from functions.workflow.state import (
    APPROVAL_TIMEOUT,
    Approval,
    GuardResult,
    PromotionResult,
    RegistrationResult,
    RejectionResult,
    RunState,
)
from functions.workflow.steps.decisions import readable_cause, record_for_run, run_of
from functions.workflow.steps.register import gate_scores

# Who signed the proof sent with an approval or a denial, as STS vouches for it when the proof was made for that
# answer (functions.workflow.approver.verify at the function's STS endpoint).
Approver = Callable[[str | None, Answer], str]


def promote(
    registry: Registry,
    state: RunState,
    approver: Approver | None = None,
    packages: ModelPackages | None = None,
) -> PromotionResult:
    """Make the gated version the champion, unless the champion it was compared with has since changed.

    A champion that changed during training (another run, a manual promotion or a rollback) supersedes this run:
    the version is recorded as ``rejected`` with the reason and the run ends cleanly (``promoted: false``), with
    that one decision. After an approval, the decision records the operator's note and who approved as
    ``approver`` finds it from the answer's proof, made for this run's version and an approval (never a name the
    answer gives). A retried Promote returns its first attempt's result.

    The verdict, the scores and the champion compared with are read back from the version's registered record, as
    Register wrote it, not from ``$.registration``: a version whose record does not say passed is refused
    (:class:`NotPassed`), whatever the state claims, unless it says held and the approval step's answer approved it.

    With ``packages``, the version's model package follows the outcome (Approved, or Rejected when superseded)
    once the decision is recorded; a mirror failure is logged and changes nothing here.
    """
    result = _promote(registry, state, approver)
    if packages is not None and result.version is not None:
        status, why = (APPROVED, "promoted") if result.promoted else (REJECTED, result.reason or "not promoted")
        packages.set_status(_package_arn(registry, state, result.version), status, f"driftloop: {why}")
    return result


def _promote(registry: Registry, state: RunState, approver: Approver | None) -> PromotionResult:
    version = _registration(state).version
    approval = state.approval
    if approval is not None and not approval.approved:
        raise WorkflowError(
            f"Promote runs only after an approval ({Approval.path()}.approved = true), got {approval.recorded!r}"
        )
    registered = _registered(registry, state, version, approved=approval is not None)
    compared_with = registered.compared_with
    run = run_of(state)
    if run is not None:
        earlier = registry.run_decision(run[0], version, ("promoted", "rejected"), since=run[1])
        if earlier is not None:
            return _promotion_result(earlier)
    reasons = registered.evaluation.verdict.reasons
    details: dict[str, Any] = {
        **gate_scores(registered.evaluation),
        "previous_version": compared_with,
        "execution": state.execution_id,
    }
    if approval is not None:
        note = approval.words
        details["approval"] = {"approved": True, "by": _vouched(state, version, approval, approver), "note": note}

    def promotion(pointer: ChampionPointer) -> Decision:
        """The decision recorded with ``pointer`` (it names the decision's id and time)."""
        return Decision(pointer.decision_id, pointer.promoted_at, "promoted", version, reasons, details)

    current = registry.champion()
    if current is not None and current.version == version and current.previous_version == compared_with:
        # The first attempt moved the pointer but may not have recorded its decision.
        decision = promotion(current)
        if registry.find_decision(decision.id, decision.time) is None:
            registry.append(decision)
        return _promotion_result(decision)
    current_version = current.version if current else None
    if current_version != compared_with:
        return _superseded(registry, state, version, compared_with, current_version)
    try:
        pointer = registry.promote(version, expected=current, reasons=reasons, details=details)
    except PromotionConflict:
        live = registry.champion()
        return _superseded(registry, state, version, compared_with, live.version if live else None)
    return _promotion_result(promotion(pointer))


def reject(
    registry: Registry,
    state: RunState,
    approver: Approver | None = None,
    packages: ModelPackages | None = None,
) -> RejectionResult:
    """Record the version as rejected: by the gate, or by the approval (denied, or no answer in time).

    A denial records who denied as ``approver`` finds it from the denial's proof, made for this run's version and
    a denial; a denial without such a proof is refused (:class:`WorkflowError`: the run fails, its ``failed``
    decision says why, and the version, whose approval request was answered, is never promoted by this run).

    With ``packages``, the version's model package is set to Rejected first and the decision records how that went.
    """
    registration = _registration(state)
    approval = state.approval
    details: dict[str, Any] = {
        "metric": registration.metric,
        "challenger": registration.challenger,
        "champion": registration.champion,
    }
    refusal: list[str] = []
    if approval is not None:
        refusal, details["approval"] = _refusal(state, registration.version, approval, approver)
    reasons = [*refusal, *registration.reasons]
    if packages is not None:
        arn = _package_arn(registry, state, registration.version)
        why = "; ".join(reasons) or "rejected"
        details[DETAIL] = packages.set_status(arn, REJECTED, f"driftloop: rejected: {why}").to_json()
    decision = record_for_run(registry, state, "rejected", registration.version, reasons, details)
    return RejectionResult(registration.version, decision.id, decision.reasons)


@dataclass(frozen=True)
class _Registered:
    """What Promote reads of the version's registered record: the evaluation with the verdict Register stored, and
    the champion Prepare named for the run (the one the verdict compared with)."""

    evaluation: Evaluation
    compared_with: str | None


def _registered(registry: Registry, state: RunState, version: str, *, approved: bool) -> _Registered:
    """The version's record as Register stored it; :class:`NotPassed` unless it is this run's and says passed, or
    says held and was ``approved`` (the approval step answered: Promote then records the approver STS vouches for,
    so an answer without a valid proof still promotes nothing)."""
    try:
        record = registry.get_version(version)
    except RegistryError as exc:
        raise NotPassed(f"{version} cannot be promoted: {exc}") from exc
    if record.lineage.get("execution") != state.execution_id:
        raise NotPassed(
            f"{version} cannot be promoted by this run ({state.execution_id}): it was registered by "
            f"{record.lineage.get('execution')}"
        )
    try:
        evaluation = Evaluation.from_dict(record.evaluation or {})
    except GateError as exc:
        raise NotPassed(f"{version} cannot be promoted: its registered evaluation is unreadable: {exc}") from exc
    verdict = evaluation.verdict
    if verdict.held and not approved:
        raise NotPassed(
            f"{version} cannot be promoted: the gate held it for a person's approval and none approved it "
            f"({verdict.reasons[-1] if verdict.reasons else 'no reasons'})"
        )
    if not (verdict.passed or verdict.held):
        raise NotPassed(
            f"{version} cannot be promoted: its registered evaluation says the gate did not pass it "
            f"({'; '.join(evaluation.verdict.reasons) or 'no reasons'})"
        )
    champion = record.lineage.get("champion_at_training")
    return _Registered(evaluation, champion.get("version") if isinstance(champion, dict) else None)


def _vouched(state: RunState, version: str, approval: Approval, approver: Approver | None) -> str:
    """Who sent ``approval``, as its proof shows when it was made for this very answer: this run's execution, this
    version, approve or deny, these words."""
    answer = Answer(state.execution_id or "", version, approval.approved, approval.words)
    if approver is None:
        raise WorkflowError(f"the step was given the {answer.verb} but no way to verify who sent it")
    if not answer.execution:
        raise WorkflowError(
            f"no execution in the state ({GuardResult.path('execution_id')}) to verify the {answer.verb} for"
        )
    return approver(approval.proof, answer)


def _package_arn(registry: Registry, state: RunState, version: str) -> str | None:
    """The version's package as this run's Register recorded it (its decisions only, when Guard says when the run
    started)."""
    run = run_of(state)
    return package_arn(registry, version, since=None if run is None else run[1])


def _registration(state: RunState) -> RegistrationResult:
    if state.registration is None:
        raise WorkflowError(f"no registration in the state ({RegistrationResult.path()}): Register must run first")
    return state.registration


def _superseded(
    registry: Registry, state: RunState, version: str, compared_with: str | None, live: str | None
) -> PromotionResult:
    reason = (
        f"champion changed during training (gate compared with {compared_with or 'no champion'}, "
        f"live is now {live or 'no champion'}); {version} was not promoted"
    )
    details = {"superseded_by": live, "compared_with": compared_with}
    return _promotion_result(record_for_run(registry, state, "rejected", version, [reason], details))


def _promotion_result(decision: Decision) -> PromotionResult:
    """Promote's result, from its decision: ``promoted``, or ``rejected`` when superseded."""
    if decision.action == "promoted":
        return PromotionResult(
            promoted=True,
            version=decision.version,
            previous_version=decision.details.get("previous_version"),
            decision_id=decision.id,
        )
    return PromotionResult(
        promoted=False,
        version=decision.version,
        live_version=decision.details.get("superseded_by"),
        reason=decision.reasons[0],
        decision_id=decision.id,
    )


def _refusal(state: RunState, version: str, approval: Approval, approver: Approver | None) -> tuple[list[str], Any]:
    """Why the approval state sent the run to Reject (its Catch put the error at ``$.approval``), and what the
    decision records of it: for a denial, who denied as its proof shows, and the reason."""
    if approval.denied:
        denier, reason = _vouched(state, version, approval, approver), approval.words
        return [f"denied by {denier}: {reason}"], {"approved": False, "by": denier, "reason": reason}
    error = approval.error
    if error is None:
        return [], approval.recorded
    if error.error == APPROVAL_TIMEOUT:
        return ["no approval within the approval timeout"], approval.recorded
    return [f"not approved: {error.error}: {readable_cause(error.cause)}"], approval.recorded
