"""Request parsing and validation against the served model's feature schema.

The rules (the OpenAPI document states them too):

- the body is ``{"instances": [...]}`` with 1 to ``max_instances`` objects, each holding every feature and
  nothing else: a missing key is an error, an explicit ``null`` is a missing value (NaN for a numeric
  feature, :data:`MISSING_CATEGORY` for a categorical one), and so is a string equal to one of the model's
  missing tokens (``ModelMetadata.missing_tokens``: the texts training read as missing), for either kind;
- numeric features take JSON numbers only (not booleans, not numeric strings), finite and within float32;
- boolean features take JSON ``true``/``false`` only (not 0/1, not ``"true"``: the type the JSON of a boolean
  column has, ``df.to_dict("records")`` included), fed to the model as 1/0;
- categorical features take strings only (not numbers: ``1`` and ``"1"`` would otherwise be two answers
  to one question); a category not seen in training is accepted (the one-hot encoder ignores it) and
  reported back as a warning on that instance.

Every problem of a request is reported in one 422, so a client fixes them all in one go. The happy path
checks a whole column at once (type sets, one numpy conversion); per-value checks run only to explain errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from functions.common.bundle import MISSING_CATEGORY, Feature
from functions.inference.body import OUT_OF_RANGE, OUT_OF_RANGE_PROBLEM, decode, json_type
from functions.inference.errors import Problem, ValidationFailed, quote

FLOAT32_MAX = float(np.finfo(np.float32).max)
INSTANCES = "instances"
MISSING_FEATURE = "missing feature (send null for a missing value)"
_ABSENT: Any = object()
_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
_BOOLEAN_TYPES = frozenset({bool, type(None)})


@dataclass(frozen=True)
class Batch:
    """A validated request: the instances as sent, one (N, 1) input array per feature, per-instance warnings."""

    instances: list[dict[str, Any]]
    columns: dict[str, np.ndarray]
    warnings: dict[int, list[dict[str, str]]] = field(default_factory=dict)


class RequestSchema:
    def __init__(self, features: Sequence[Feature], missing_tokens: Sequence[str] = ("",)) -> None:
        self.features = tuple(features)
        self.names = frozenset(f.name for f in self.features)
        # A null becomes MISSING_CATEGORY: never an "unknown category", whether or not training saw one.
        self._known = {f.name: frozenset(f.categories) | {MISSING_CATEGORY} for f in self.features}
        # Per feature, the strings that are missing: a token is, unless the model knows it as a category (an older
        # bundle's Parquet text could be one).
        self.missing = {f.name: frozenset(missing_tokens) - frozenset(f.categories) for f in self.features}

    def parse(self, body: bytes, max_instances: int) -> Batch:
        payload = decode(body, partial(self.validate, max_instances=max_instances), INSTANCES)
        return self.validate(payload, max_instances)

    def validate(self, payload: Any, max_instances: int) -> Batch:
        instances, problems = _instances(payload, max_instances)
        for index, instance in enumerate(instances):
            if type(instance) is not dict:
                problems.append(Problem(index, None, f"expected an object of features, got {json_type(instance)}"))
            elif instance.keys() != self.names:
                problems += [Problem(index, name, "unknown feature") for name in instance if name not in self.names]
                problems += [Problem(index, f.name, MISSING_FEATURE) for f in self.features if f.name not in instance]
        intact = not problems
        columns: dict[str, np.ndarray] = {}
        warnings: dict[int, list[dict[str, str]]] = {}
        for feature in self.features:
            name = feature.name
            if intact:
                values = [instance[name] for instance in instances]
            else:
                values = [i.get(name, _ABSENT) if type(i) is dict else _ABSENT for i in instances]
            if feature.type == "numeric":
                column = _numeric_column(name, self.missing[name], values, problems)
            elif feature.type == "boolean":
                column = _boolean_column(name, self.missing[name], values, problems)
            else:
                column = _categorical_column(name, self._known[name], self.missing[name], values, problems, warnings)
            if column is not None:
                columns[name] = column
        if problems:
            problems.sort(key=lambda p: -1 if p.instance is None else p.instance)
            count = len(problems)
            raise ValidationFailed(f"the request has {count} problem{'s' if count > 1 else ''}: see details", problems)
        return Batch(instances, columns, warnings)


def _instances(payload: Any, max_instances: int) -> tuple[list[Any], list[Problem]]:
    """The instances worth checking one by one, and the problems of the body itself."""
    if type(payload) is not dict:
        got = json_type(payload)
        raise ValidationFailed(
            'the body must be a JSON object: {"instances": [...]}',
            [Problem(None, None, f"expected an object, got {got}")],
        )
    problems = [
        Problem(None, key, 'unknown field (the body holds only "instances")') for key in payload if key != INSTANCES
    ]
    instances = payload.get(INSTANCES, _ABSENT)
    if instances is _ABSENT:
        problems.append(Problem(None, "instances", 'missing: send {"instances": [{...}, ...]}'))
    elif type(instances) is not list:
        problems.append(Problem(None, "instances", f"expected an array of instances, got {json_type(instances)}"))
    elif not instances:
        problems.append(Problem(None, "instances", f"empty: send 1 to {max_instances} instances"))
    elif len(instances) > max_instances:
        problems.append(Problem(None, "instances", f"{len(instances)} instances: at most {max_instances} per request"))
    else:
        return instances, problems
    raise ValidationFailed(f"the request body is invalid: {problems[-1].field} {problems[-1].problem}", problems)


def _tokens_as_null(tokens: frozenset[str], values: list[Any]) -> tuple[list[Any], set[type]]:
    """``values`` with each string that is a missing token as None (a number's or boolean's missing value), and the
    types they then hold: one pass over the column when no string was sent."""
    kinds = set(map(type, values))
    if str in kinds:
        values = [None if type(value) is str and value in tokens else value for value in values]
        kinds = set(map(type, values))
    return values, kinds


def _numeric_column(name: str, tokens: frozenset[str], values: list[Any], problems: list[Problem]) -> np.ndarray | None:
    values, kinds = _tokens_as_null(tokens, values)
    if _NUMBER_TYPES.issuperset(kinds):
        try:
            wide = np.array(values, dtype=np.float64)  # None -> NaN
        except OverflowError:  # an integer beyond the float range
            wide = None
        if wide is not None and np.count_nonzero(np.abs(wide) <= FLOAT32_MAX) + values.count(None) == len(values):
            return wide.astype(np.float32).reshape(-1, 1)
    problems += [
        Problem(index, name, problem) for index, value in enumerate(values) if (problem := _number_problem(value))
    ]
    return None


def _boolean_column(name: str, tokens: frozenset[str], values: list[Any], problems: list[Problem]) -> np.ndarray | None:
    values, kinds = _tokens_as_null(tokens, values)
    if _BOOLEAN_TYPES.issuperset(kinds):
        return np.array(values, dtype=np.float64).astype(np.float32).reshape(-1, 1)  # None -> NaN
    problems += [
        Problem(index, name, f"expected a boolean (true or false), got {json_type(value)}")
        for index, value in enumerate(values)
        if value is not None and value is not _ABSENT and type(value) is not bool
    ]
    return None


def _number_problem(value: Any) -> str | None:
    kind = type(value)
    if kind is int or kind is float:
        if -FLOAT32_MAX <= value <= FLOAT32_MAX:
            return None
        if value != value:
            return "NaN is not a number: send null for a missing value"
        if kind is float and value in (float("inf"), float("-inf")):
            return "Infinity is not a number: values must be finite"
        return f"out of range: the model takes 32-bit floats (magnitude at most {FLOAT32_MAX:.4g})"
    if value is None or value is _ABSENT:
        return None
    if value is OUT_OF_RANGE:
        return OUT_OF_RANGE_PROBLEM
    return f"expected a number, got {json_type(value)}"


def _categorical_column(
    name: str,
    known: frozenset[str],
    missing: frozenset[str],
    values: list[Any],
    problems: list[Problem],
    warnings: dict[int, list[dict[str, str]]],
) -> np.ndarray | None:
    if not _TEXT_TYPES.issuperset(map(type, values)):
        problems += [
            Problem(index, name, f"expected a string (a category), got {json_type(value)}")
            for index, value in enumerate(values)
            if value is not None and value is not _ABSENT and type(value) is not str
        ]
        return None
    # Nulls and tokens are never known categories (``known`` holds MISSING_CATEGORY instead): only a column that
    # holds a value outside ``known`` needs mapping, then checking again.
    if not known.issuperset(values):
        values = [MISSING_CATEGORY if value is None or value in missing else value for value in values]
    if not known.issuperset(values):
        for index, value in enumerate(values):
            if value not in known:
                problem = f"unknown category {quote(value)}: not seen in training, the model ignores it"
                warnings.setdefault(index, []).append({"field": name, "problem": problem})
    return np.array(values, dtype=object).reshape(-1, 1)
