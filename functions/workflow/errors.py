"""The one error a workflow step raises when it cannot go on."""

from __future__ import annotations


class WorkflowError(Exception):
    """A step cannot go on; the message says why and ends up in the decision record.

    Its class name is the error Step Functions catches and RecordFailure records (``WorkflowError: ...``), so the
    state and trigger parsers raise it too rather than subclasses of their own.
    """
