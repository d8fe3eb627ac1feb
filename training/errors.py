"""The one exception that fails a training job with a human-readable reason."""

from __future__ import annotations

from collections.abc import Sequence


class TrainingFailure(Exception):
    """The job cannot produce a trustworthy model; the message goes to ``output/failure``.

    ``problems`` are reported together, so a user fixes all of them in one go; ``advice`` (how to) comes last.
    """

    def __init__(self, title: str, problems: Sequence[str] = (), advice: str | None = None) -> None:
        self.title = title
        self.problems = tuple(problems)
        self.advice = advice
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.problems:
            stated = self.title
        elif len(self.problems) == 1:
            stated = f"{self.title}: {self.problems[0]}"
        else:
            listed = "\n".join(f"- {problem}" for problem in self.problems)
            stated = f"{self.title} ({len(self.problems)} problems):\n{listed}"
        return stated if self.advice is None else f"{stated}\n{self.advice}"
