"""The layout of an assembled training set: the contract between Assemble, which writes it, and the training
program, which tells trusted rows from feedback by the folder they came from.

``base/`` holds copies of the training data prefix (data an operator put there: trusted); ``feedback/`` holds
captured predictions joined with labels that API callers sent (untrusted: they may be wrong or malicious). A
``train`` channel without these folders (a local run on a plain directory) is all trusted data.
"""

from __future__ import annotations

BASE_FOLDER = "base/"
FEEDBACK_FOLDER = "feedback/"
FEEDBACK_FILE = FEEDBACK_FOLDER + "feedback.csv"


def is_feedback(relative_path: str) -> bool:
    """Whether a file of the ``train`` channel (its path relative to the channel, ``/``-separated) is feedback."""
    return relative_path.startswith(FEEDBACK_FOLDER)
