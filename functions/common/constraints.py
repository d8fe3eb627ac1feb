"""Data-quality baselines in SageMaker Model Monitor's formats: ``statistics.json``, ``constraints.json`` and the
``constraint_violations.json`` shape, as AWS documents them for bring-your-own-container monitors.

Training writes the first two into the bundle (:data:`~functions.common.bundle.OPTIONAL_FILES`); an operator may
store their own ``constraints.json`` (edited, or from an existing Model Monitor baseline) with
``driftloop constraints set``; the monitor checks the champion's captures against them and reports violations.

``constraints.json``::

    {"version": 0,
     "features": [{"name": str, "inferred_type": "Integral" | "Fractional" | "String" | "Unknown",
                   "completeness": 0..1,                     # optional: the least share of non-missing values
                   "num_constraints": {"is_non_negative": bool,
                                       "min": number, "max": number},   # min/max: driftloop's own, optional
                   "string_constraints": {"domains": [str, ...]}}],    # optional: the values allowed
     "monitoring_config": {"evaluate_constraints": "Enabled" | "Disabled",
                           "emit_metrics": "Enabled" | "Disabled",
                           "datatype_check_threshold": 0..1, "domain_content_threshold": 0..1,
                           "distribution_constraints": {...}}}

Fields driftloop does not use (``monitoringConfigOverrides``, ``distribution_constraints``: drift is the PSI
monitor's) are accepted and kept. ``num_constraints.min``/``max`` are driftloop's own range check (Model Monitor has
``is_non_negative`` only). Standard library only: the monitor Lambda and the CLI import it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

FORMAT_VERSION = 0

InferredType = Literal["Integral", "Fractional", "String", "Unknown"]
INFERRED_TYPES: tuple[InferredType, ...] = ("Integral", "Fractional", "String", "Unknown")
NUMERIC_TYPES: tuple[InferredType, ...] = ("Integral", "Fractional")
ENABLED, DISABLED = "Enabled", "Disabled"
# The thresholds Model Monitor's baselining job writes, and the defaults when monitoring_config leaves one out.
DEFAULT_DATATYPE_CHECK_THRESHOLD = 1.0
DEFAULT_DOMAIN_CONTENT_THRESHOLD = 1.0
# A String feature gets a domain (its observed values) only up to this many distinct values: a larger one is an id
# or free text, whose new values are not violations (and its values would lengthen the monitor's query).
MAX_DOMAIN_VALUES = 100


class ConstraintsError(ValueError):
    """A constraints file does not follow the format above: the message names the feature and field."""


class CheckType(StrEnum):
    """Model Monitor's ``constraint_check_type`` values that driftloop evaluates, and its own range check."""

    DATA_TYPE = "data_type_check"
    COMPLETENESS = "completeness_check"
    CATEGORICAL_VALUES = "categorical_values_check"
    # is_non_negative (Model Monitor documents no check type for it), apart so an alarm tells a sign from a type.
    NON_NEGATIVE = "non_negative_check"
    # driftloop's own: num_constraints.min / max.
    RANGE = "range_check"


@dataclass(frozen=True)
class FeatureConstraint:
    name: str
    inferred_type: InferredType
    completeness: float | None = None
    is_non_negative: bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    domains: tuple[str, ...] | None = None
    # The feature's object as read: written back unchanged, so fields driftloop ignores survive a round trip.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def numeric(self) -> bool:
        return self.inferred_type in NUMERIC_TYPES

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.raw, "name": self.name, "inferred_type": self.inferred_type}
        if self.completeness is not None:
            data["completeness"] = self.completeness
        numbers = {
            key: value
            for key, value in (("is_non_negative", self.is_non_negative), ("min", self.minimum), ("max", self.maximum))
            if value is not None
        }
        if numbers:
            data["num_constraints"] = {**data.get("num_constraints", {}), **numbers}
        if self.domains is not None:
            data["string_constraints"] = {**data.get("string_constraints", {}), "domains": list(self.domains)}
        return data


@dataclass(frozen=True)
class MonitoringConfig:
    evaluate_constraints: bool = True
    emit_metrics: bool = True
    # The least share of a feature's present values that must have its type (are in its domain): below it, a
    # violation. 1.0, the default, lets no value through.
    datatype_check_threshold: float = DEFAULT_DATATYPE_CHECK_THRESHOLD
    domain_content_threshold: float = DEFAULT_DOMAIN_CONTENT_THRESHOLD
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.raw,
            "evaluate_constraints": ENABLED if self.evaluate_constraints else DISABLED,
            "emit_metrics": ENABLED if self.emit_metrics else DISABLED,
            "datatype_check_threshold": self.datatype_check_threshold,
            "domain_content_threshold": self.domain_content_threshold,
        }


@dataclass(frozen=True)
class Constraints:
    features: tuple[FeatureConstraint, ...]
    monitoring_config: MonitoringConfig = MonitoringConfig()
    version: float = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "features": [feature.to_dict() for feature in self.features],
            "monitoring_config": self.monitoring_config.to_dict(),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()


# -- parsing ------------------------------------------------------------------------------------------------------


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConstraintsError(f"{where} must be a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _number(
    data: Mapping[str, Any], key: str, where: str, low: float = -math.inf, high: float = math.inf
) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConstraintsError(f"{where}.{key} must be a finite number, got {_kind(value)} {value!r}")
    if not low <= value <= high:
        raise ConstraintsError(f"{where}.{key} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _switch(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, ENABLED)
    if value not in (ENABLED, DISABLED):
        raise ConstraintsError(f"{where}.{key} must be {ENABLED!r} or {DISABLED!r}, got {value!r}")
    return bool(value == ENABLED)


def _feature(data: Any, index: int) -> FeatureConstraint:
    item = _object(data, f"features[{index}]")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ConstraintsError(f"features[{index}].name must be a non-empty string, got {name!r}")
    where = f"feature {name!r}"
    kind = item.get("inferred_type", "Unknown")
    if kind not in INFERRED_TYPES:
        raise ConstraintsError(f"{where}: inferred_type must be one of {', '.join(INFERRED_TYPES)}, got {kind!r}")
    numbers = _object(item.get("num_constraints", {}), f"{where}: num_constraints")
    strings = _object(item.get("string_constraints", {}), f"{where}: string_constraints")
    non_negative = numbers.get("is_non_negative")
    if non_negative is not None and not isinstance(non_negative, bool):
        raise ConstraintsError(f"{where}: num_constraints.is_non_negative must be true or false, got {non_negative!r}")
    minimum = _number(numbers, "min", f"{where}: num_constraints")
    maximum = _number(numbers, "max", f"{where}: num_constraints")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ConstraintsError(f"{where}: num_constraints.min {minimum:g} is above max {maximum:g}")
    if (non_negative or minimum is not None or maximum is not None) and kind not in NUMERIC_TYPES:
        raise ConstraintsError(f"{where}: num_constraints need an Integral or Fractional inferred_type, not {kind}")
    domains = strings.get("domains")
    if domains is not None:
        if not isinstance(domains, list) or not all(isinstance(value, str) for value in domains):
            raise ConstraintsError(f"{where}: string_constraints.domains must be an array of strings")
        if kind != "String":
            raise ConstraintsError(f"{where}: string_constraints.domains need the String inferred_type, not {kind}")
    return FeatureConstraint(
        name=name,
        inferred_type=kind,
        completeness=_number(item, "completeness", where, 0.0, 1.0),
        is_non_negative=non_negative,
        minimum=minimum,
        maximum=maximum,
        domains=None if domains is None else tuple(domains),
        raw=dict(item),
    )


def parse_constraints(data: Any) -> Constraints:
    """A ``constraints.json`` document (already decoded), checked; raises :class:`ConstraintsError`."""
    document = _object(data, "constraints.json")
    version = _number(document, "version", "constraints.json")
    features = document.get("features")
    if not isinstance(features, list):
        raise ConstraintsError(f"constraints.json: features must be an array, got {_kind(features)}")
    parsed = tuple(_feature(item, index) for index, item in enumerate(features))
    names = [feature.name for feature in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConstraintsError(f"constraints.json: features {', '.join(map(repr, repeated))} appear more than once")
    config = _object(document.get("monitoring_config", {}), "constraints.json: monitoring_config")
    where = "monitoring_config"
    datatype = _number(config, "datatype_check_threshold", where, 0.0, 1.0)
    domain = _number(config, "domain_content_threshold", where, 0.0, 1.0)
    return Constraints(
        features=parsed,
        monitoring_config=MonitoringConfig(
            evaluate_constraints=_switch(config, "evaluate_constraints", where),
            emit_metrics=_switch(config, "emit_metrics", where),
            datatype_check_threshold=DEFAULT_DATATYPE_CHECK_THRESHOLD if datatype is None else datatype,
            domain_content_threshold=DEFAULT_DOMAIN_CONTENT_THRESHOLD if domain is None else domain,
            raw=dict(config),
        ),
        version=FORMAT_VERSION if version is None else version,
    )


def read_constraints(text: bytes | str) -> Constraints:
    """A ``constraints.json`` file's text, decoded and checked."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConstraintsError(f"constraints.json is not valid JSON: {exc}") from exc
    return parse_constraints(data)


# -- statistics ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericStatistics:
    present: int
    missing: int
    mean: float
    sum: float
    std_dev: float
    minimum: float
    maximum: float


@dataclass(frozen=True)
class StringStatistics:
    present: int
    missing: int
    distinct_count: int
    # (value, count), most frequent first: Model Monitor's categorical distribution buckets.
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class FeatureStatistics:
    name: str
    inferred_type: InferredType
    statistics: NumericStatistics | StringStatistics

    def to_dict(self) -> dict[str, Any]:
        stats = self.statistics
        common = {"num_present": stats.present, "num_missing": stats.missing}
        if isinstance(stats, NumericStatistics):
            numbers = {"common": common, "mean": stats.mean, "sum": stats.sum, "std_dev": stats.std_dev}
            numbers |= {"min": stats.minimum, "max": stats.maximum}
            return {"name": self.name, "inferred_type": self.inferred_type, "numerical_statistics": numbers}
        buckets = [{"value": value, "count": count} for value, count in stats.counts]
        strings = {
            "common": common,
            "distinct_count": stats.distinct_count,
            "distribution": {"categorical": {"buckets": buckets}},
        }
        return {"name": self.name, "inferred_type": self.inferred_type, "string_statistics": strings}


@dataclass(frozen=True)
class Statistics:
    item_count: int
    features: tuple[FeatureStatistics, ...]

    def to_json(self) -> bytes:
        document = {
            "version": FORMAT_VERSION,
            "dataset": {"item_count": self.item_count},
            "features": [feature.to_dict() for feature in self.features],
        }
        return json.dumps(document, indent=2, sort_keys=True).encode()


def suggest_constraints(statistics: Statistics) -> Constraints:
    """The constraints a baseline suggests, as Model Monitor's baselining job does: each feature's type and
    completeness as observed, non-negative when no value was negative, the observed values of a String feature
    with at most :data:`MAX_DOMAIN_VALUES` of them."""
    features = []
    for feature in statistics.features:
        stats = feature.statistics
        total = stats.present + stats.missing
        completeness = stats.present / total if total else 1.0
        if isinstance(stats, NumericStatistics):
            non_negative = stats.present > 0 and stats.minimum >= 0
            features.append(
                FeatureConstraint(feature.name, feature.inferred_type, completeness, is_non_negative=non_negative)
            )
        else:
            small = stats.distinct_count <= MAX_DOMAIN_VALUES
            domains = tuple(sorted(value for value, _ in stats.counts)) if small else None
            features.append(FeatureConstraint(feature.name, feature.inferred_type, completeness, domains=domains))
    return Constraints(tuple(features))


# -- violations ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: CheckType
    description: str

    def to_dict(self) -> dict[str, str]:
        return {
            "feature_name": self.feature_name,
            "constraint_check_type": str(self.constraint_check_type),
            "description": self.description,
        }


def violations_document(violations: Sequence[Violation]) -> dict[str, Any]:
    """``constraint_violations.json``'s shape."""
    return {"violations": [violation.to_dict() for violation in violations]}
