"""The training workflow's steps as plain functions, one module per step or concern; the state machine calls
them through ``functions.workflow.handlers``.

Each step takes the typed state the previous steps produced (``functions.workflow.state``) and returns the part it
adds. Guard, RecordFailure and Release also get the execution's id from the context object, so a failure path can
release the run lock even when Guard's own result is missing.

The version is named in one place, Guard, when the run acquires the lock: Assemble, Prepare and Register use
``$.guard.version``.

Every step may run twice with the same input (the state machine retries transient Lambda errors, which may come
after the function did its work) and then returns the same result without writing anything twice: Guard keeps
its lock, Register finds the version it stored, and the decisions a run records (``registered``, ``promoted``,
``rejected``, ``failed``) are looked up by the execution id from ``$.guard`` before one is written.
"""

from functions.workflow.errors import NotPassed, WorkflowError
from functions.workflow.steps.approval import approval_message, request_approval
from functions.workflow.steps.assemble import finish_assembly_step, plan_assembly_step
from functions.workflow.steps.failure import record_failure
from functions.workflow.steps.guard import guard, release, run_lock, run_outcome
from functions.workflow.steps.hyperparameters import OVERRIDABLE_HYPERPARAMETERS, run_hyperparameters
from functions.workflow.steps.prepare import prepare
from functions.workflow.steps.promotion import promote, reject
from functions.workflow.steps.register import register

__all__ = [
    "OVERRIDABLE_HYPERPARAMETERS",
    "NotPassed",
    "WorkflowError",
    "approval_message",
    "finish_assembly_step",
    "guard",
    "plan_assembly_step",
    "prepare",
    "promote",
    "record_failure",
    "register",
    "reject",
    "release",
    "request_approval",
    "run_hyperparameters",
    "run_lock",
    "run_outcome",
]
