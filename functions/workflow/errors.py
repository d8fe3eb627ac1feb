"""The errors a workflow step raises when it cannot go on: :class:`WorkflowError`, and :class:`NotPassed` for a
refused promotion."""

from __future__ import annotations


class WorkflowError(Exception):
    """A step cannot go on; the message says why and ends up in the decision record.

    Its class name is the error Step Functions catches and RecordFailure records (``WorkflowError: ...``), so the
    state and trigger parsers raise it too rather than subclasses of their own.
    """


class NotPassed(WorkflowError):
    """Promote was asked to promote a version whose registered record does not say the gate passed it (a forged or
    corrupted state): the run goes to the failure path, which records this as its reason."""
