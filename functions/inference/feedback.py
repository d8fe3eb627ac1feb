"""Ground-truth feedback (``POST /feedback``): parsing and validation against the live model and the id contract.

The body is one item, ``{"prediction_id": ..., "label": ...}`` (``"value"`` for a regression model), or a batch
``{"feedback": [item, ...]}`` of 1 to ``max_items``. Every item must carry:

- a ``prediction_id`` this service issued (``functions.common.records.prediction_time`` checks its format and
  its MAC under one of the deployment's keys), served no later than now (a few seconds of clock skew between
  hosts allowed) and no earlier than ``max_age`` ago;
- for a classifier, ``label``: one of the live model's classes, as a string (``"1"``, not ``1``); for a regression
  model, ``value``: a finite number;
- and no other key.

As for predictions, every problem of a request is reported in one 422 (``instance``: the index in ``feedback``,
or null for a single-item body).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from functions.common.records import IdKeys, InvalidPredictionId, prediction_time
from functions.inference.body import OUT_OF_RANGE, OUT_OF_RANGE_PROBLEM, decode, json_type
from functions.inference.errors import Problem, ValidationFailed, quote

BATCH_FIELD = "feedback"
ID_FIELD = "prediction_id"
LABEL_FIELD = "label"
VALUE_FIELD = "value"
# Ids are minted on other hosts whose clocks may run slightly ahead of this one.
CLOCK_SKEW = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Feedback:
    prediction_id: str
    label: str | None = None
    value: float | None = None


class FeedbackSchema:
    """What feedback the live model takes: its task and, for a classifier, its classes."""

    def __init__(self, task: str, classes: Sequence[str], max_items: int, max_age: timedelta, keys: IdKeys) -> None:
        self.task = task
        self.classes = tuple(classes)
        self._known = frozenset(self.classes)
        self.max_items = max_items
        self.max_age = max_age
        self._keys = keys
        self.answer = LABEL_FIELD if task == "classification" else VALUE_FIELD

    def parse(self, body: bytes, now: datetime) -> list[Feedback]:
        return self.validate(decode(body, partial(self.validate, now=now), BATCH_FIELD), now)

    def validate(self, payload: Any, now: datetime) -> list[Feedback]:
        problems: list[Problem] = []
        items = self._items(payload)
        accepted: list[Feedback] = []
        first_seen: dict[str, int | None] = {}
        for index, item in items:
            if type(item) is not dict:
                problems.append(Problem(index, None, f"expected a feedback object, got {json_type(item)}"))
                continue
            known = (ID_FIELD, self.answer)
            item_problems = [Problem(index, key, self._unknown(key)) for key in item if key not in known]
            prediction_id, problem = self._prediction_id(item.get(ID_FIELD, _ABSENT), now)
            if problem:
                item_problems.append(Problem(index, ID_FIELD, problem))
            elif prediction_id in first_seen:
                where = first_seen[prediction_id]
                item_problems.append(Problem(index, ID_FIELD, f"duplicate: item {where} has the same prediction_id"))
            else:
                first_seen[prediction_id] = index
            answer = item.get(self.answer, _ABSENT)
            if self.answer == LABEL_FIELD:
                label, problem = self._label(answer)
                feedback = Feedback(prediction_id, label=label)
            else:
                value, problem = _value(answer)
                feedback = Feedback(prediction_id, value=value)
            if problem:
                item_problems.append(Problem(index, self.answer, problem))
            problems += item_problems
            if not item_problems:
                accepted.append(feedback)
        if problems:
            count = len(problems)
            raise ValidationFailed(f"the request has {count} problem{'s' if count > 1 else ''}: see details", problems)
        return accepted

    def _items(self, payload: Any) -> list[tuple[int | None, Any]]:
        if type(payload) is not dict:
            raise ValidationFailed(
                f'the body must be a JSON object: {{"{ID_FIELD}": ..., "{self.answer}": ...}} '
                f'or {{"{BATCH_FIELD}": [...]}}',
                [Problem(None, None, f"expected an object, got {json_type(payload)}")],
            )
        if BATCH_FIELD not in payload:
            return [(None, payload)]
        problems = [
            Problem(None, key, f'unknown field (a batch body holds only "{BATCH_FIELD}")')
            for key in payload
            if key != BATCH_FIELD
        ]
        items = payload[BATCH_FIELD]
        if type(items) is not list:
            got = json_type(items)
            problems.append(Problem(None, BATCH_FIELD, f"expected an array of feedback objects, got {got}"))
        elif not items:
            problems.append(Problem(None, BATCH_FIELD, f"empty: send 1 to {self.max_items} items"))
        elif len(items) > self.max_items:
            problems.append(Problem(None, BATCH_FIELD, f"{len(items)} items: at most {self.max_items} per request"))
        if problems:
            last = problems[-1]
            raise ValidationFailed(f"the request body is invalid: {last.field} {last.problem}", problems)
        return list(enumerate(items))

    def _unknown(self, key: str) -> str:
        if key == VALUE_FIELD:
            return f'unknown field: the model is a classifier, send the true class as "{LABEL_FIELD}"'
        if key == LABEL_FIELD:
            return f'unknown field: the model is a regression, send the true value as "{VALUE_FIELD}"'
        return f'unknown field (an item holds "{ID_FIELD}" and "{self.answer}")'

    def _prediction_id(self, raw: Any, now: datetime) -> tuple[str, str | None]:
        if raw is _ABSENT:
            return "", "missing: the prediction_id the prediction was served with"
        if type(raw) is not str:
            return "", f"expected a string, got {json_type(raw)}"
        try:
            served = prediction_time(raw, self._keys)
        except InvalidPredictionId as exc:
            return raw, str(exc)
        if served > now + CLOCK_SKEW:
            return raw, "the id's time is in the future: no prediction was served with this id"
        if now - served > self.max_age:
            return raw, f"the prediction is older than {self.max_age.days} days: its feedback is no longer accepted"
        return raw, None

    def _label(self, raw: Any) -> tuple[str | None, str | None]:
        expected = f"one of {', '.join(map(repr, self.classes))}"
        if raw is _ABSENT:
            return None, f"missing: the true class, {expected}"
        if type(raw) is not str:
            return None, f"expected a string, {expected}; got {json_type(raw)}"
        if raw not in self._known:
            return None, f"unknown class {quote(raw)}: expected {expected}"
        return raw, None


def _value(raw: Any) -> tuple[float | None, str | None]:
    if raw is _ABSENT:
        return None, "missing: the true value, a number"
    if raw is OUT_OF_RANGE:
        return None, OUT_OF_RANGE_PROBLEM
    if type(raw) is not int and type(raw) is not float:
        return None, f"expected a number, got {json_type(raw)}"
    try:
        value = float(raw)
    except OverflowError:
        return None, "out of range: the value exceeds the float range"
    if not math.isfinite(value):
        return None, "expected a finite number (not NaN or Infinity)"
    return value, None


_ABSENT: Any = object()
