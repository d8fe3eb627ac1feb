"""The one exception that fails a training job with a human-readable reason."""

from __future__ import annotations

from collections.abc import Sequence


class TrainingFailure(Exception):
    """The job cannot produce a trustworthy model; the message goes to ``output/failure``.

    ``problems`` are reported together, so a user fixes all of them in one go.
    """

    def __init__(self, title: str, problems: Sequence[str] = ()) -> None:
        self.title = title
        self.problems = tuple(problems)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.problems:
            return self.title
        if len(self.problems) == 1:
            return f"{self.title}: {self.problems[0]}"
        listed = "\n".join(f"- {problem}" for problem in self.problems)
        return f"{self.title} ({len(self.problems)} problems):\n{listed}"
