"""The champion's captures checked against data-quality constraints (:mod:`functions.common.constraints`).

Athena counts, per constrained feature, in one scan of the window's captures (:func:`constraints_query`, one row):

- ``missing``: the feature absent or null, or a string that is one of the champion's missing tokens (a String
  feature's ``__missing__`` too, as serving encodes a null);
- ``wrong_type``: an Integral or Fractional feature's present value that is not a finite JSON number (a string,
  a boolean), or for Integral not a whole number;
- ``negative``: a finite number below 0 (``is_non_negative``);
- ``out_of_range``: a finite number below ``min`` or above ``max`` (driftloop's own range check);
- ``unseen``: a String feature's present value outside its ``domains``.

:func:`check` judges the counts: completeness below the constraint's, a share of present values of the right type
(or in the domain) below ``datatype_check_threshold`` (``domain_content_threshold``), and any negative or out of
range value, each a :class:`~functions.common.constraints.Violation` in Model Monitor's
``constraint_violations.json`` shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from functions.common.bundle import MISSING_CATEGORY
from functions.common.catalog import CAPTURES_TABLE
from functions.common.constraints import (
    CheckType,
    Constraints,
    ConstraintsError,
    FeatureConstraint,
    Violation,
    violations_document,
)
from functions.common.labelled_sql import finite
from functions.common.sql import identifier, json_path, literal, number
from functions.monitor.queries import Window, missing_token, window_filter

# Athena's limit on a query's text: a longer one fails, and with it the run.
MAX_QUERY_BYTES = 262_144


@dataclass(frozen=True)
class FeatureCounts:
    missing: int = 0
    wrong_type: int = 0
    negative: int = 0
    out_of_range: int = 0
    unseen: int = 0


def _conditions(feature: FeatureConstraint, raw: str, text: str, tokens: Sequence[str]) -> dict[str, str]:
    """The SQL condition of each count that applies to ``feature`` (``raw``: its JSON text, ``text``: its scalar;
    ``tokens``: the champion's missing tokens)."""
    value = finite(raw)
    missing = f"{raw} IS NULL OR {raw} = {literal('null')}"
    if feature.inferred_type == "String":
        missing += f" OR {missing_token(text, [MISSING_CATEGORY, *tokens])}"
    else:  # a number's text may spell a token ("-999"): only a string that does is missing
        missing += f" OR ({value} IS NULL AND {missing_token(text, tokens)})"
    conditions = {"missing": missing}
    present = f"NOT ({missing})"
    if feature.numeric:
        fraction = f" OR {value} <> floor({value})" if feature.inferred_type == "Integral" else ""
        conditions["wrong_type"] = f"{present} AND ({value} IS NULL{fraction})"
    if feature.is_non_negative:
        conditions["negative"] = f"{value} < {number(0)}"
    bounds = [
        f"{value} {operator} {number(limit)}"
        for operator, limit in (("<", feature.minimum), (">", feature.maximum))
        if limit is not None
    ]
    if bounds:
        conditions["out_of_range"] = " OR ".join(bounds)
    if feature.domains is not None:
        allowed = ", ".join(literal(value) for value in feature.domains)
        outside = f" AND ({text} IS NULL OR {text} NOT IN ({allowed}))" if allowed else ""
        conditions["unseen"] = present + outside
    return conditions


def _columns(constraints: Constraints, tokens: Sequence[str] = ()) -> list[tuple[int, str, str]]:
    """(feature index, count, SQL condition over the inner query's columns) of every count the query returns; which
    counts, and their order, do not depend on the missing ``tokens``."""
    columns = []
    for index, feature in enumerate(constraints.features):
        raw, text = identifier(f"j{index}"), identifier(f"t{index}")
        columns += [(index, name, condition) for name, condition in _conditions(feature, raw, text, tokens).items()]
    return columns


def constraints_query(window: Window, constraints: Constraints, missing_tokens: Sequence[str] = ()) -> str:
    """One row: the captures in the window, then each count of :func:`_columns`, in its order (``missing_tokens``:
    the champion's, strings that are missing values). Raises ConstraintsError when the query would be too long for
    Athena."""
    features = identifier("features")
    read = ", ".join(
        f"json_format(json_extract({features}, {json_path(feature.name)})) AS {identifier(f'j{index}')}, "
        f"json_extract_scalar({features}, {json_path(feature.name)}) AS {identifier(f't{index}')}"
        for index, feature in enumerate(constraints.features)
    )
    sums = "".join(
        f", sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {identifier(f'c{position}')}"
        for position, (_, _, condition) in enumerate(_columns(constraints, missing_tokens))
    )
    query = (
        f"SELECT count(*) AS {identifier('n')}{sums} "  # noqa: S608
        f"FROM (SELECT {read or '1 AS one'} FROM {identifier(CAPTURES_TABLE)} WHERE {window_filter(window)})"
    )
    size = len(query.encode())
    if size > MAX_QUERY_BYTES:
        largest = max(constraints.features, key=lambda feature: len(feature.domains or ()))
        raise ConstraintsError(
            f"the constraints make an Athena query of {size} bytes, above Athena's {MAX_QUERY_BYTES}: check fewer "
            f"features or shorten their domains (the longest: feature {largest.name!r}, "
            f"{len(largest.domains or ())} values)"
        )
    return query


def constraint_counts(
    rows: Sequence[Sequence[str | None]], constraints: Constraints
) -> tuple[int, list[FeatureCounts]]:
    """The captures in the window and each feature's counts, from :func:`constraints_query`'s row."""
    [(total, *values)] = rows
    found: list[dict[str, int]] = [{} for _ in constraints.features]
    for (index, name, _), value in zip(_columns(constraints), values, strict=True):
        found[index][name] = int(value or 0)
    return int(total or 0), [FeatureCounts(**counts) for counts in found]


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def check(constraints: Constraints, total: int, counts: Sequence[FeatureCounts]) -> list[Violation]:
    """The violations of ``constraints`` by ``total`` captures with these per-feature ``counts``."""
    config = constraints.monitoring_config
    violations = []
    for feature, found in zip(constraints.features, counts, strict=True):
        present = total - found.missing
        completeness = _share(present, total)
        if feature.completeness is not None and completeness < feature.completeness:
            violations.append(
                Violation(
                    feature.name,
                    CheckType.COMPLETENESS,
                    f"completeness {completeness:.4g} is below the constraint {feature.completeness:.4g}: "
                    f"{found.missing} of {total} values missing",
                )
            )
        typed = _share(present - found.wrong_type, present)
        if feature.numeric and typed < config.datatype_check_threshold:
            violations.append(
                Violation(
                    feature.name,
                    CheckType.DATA_TYPE,
                    f"{found.wrong_type} of {present} present values are not {feature.inferred_type} (share of the "
                    f"right type {typed:.4g}, below datatype_check_threshold {config.datatype_check_threshold:.4g})",
                )
            )
        if found.negative:
            violations.append(
                Violation(feature.name, CheckType.NON_NEGATIVE, f"{found.negative} negative values (is_non_negative)")
            )
        if found.out_of_range:
            violations.append(
                Violation(
                    feature.name,
                    CheckType.RANGE,
                    f"{found.out_of_range} values outside [{_bound(feature.minimum)}, {_bound(feature.maximum)}]",
                )
            )
        known = _share(present - found.unseen, present)
        if feature.domains is not None and known < config.domain_content_threshold:
            violations.append(
                Violation(
                    feature.name,
                    CheckType.CATEGORICAL_VALUES,
                    f"{found.unseen} of {present} present values are outside the domain (share in the domain "
                    f"{known:.4g}, below domain_content_threshold {config.domain_content_threshold:.4g})",
                )
            )
    return violations


def _bound(limit: float | None) -> str:
    return "-" if limit is None else f"{limit:g}"


@dataclass(frozen=True)
class DataQuality:
    """A window's data-quality check: the constraints' origin, what was counted and what it violated."""

    source: str
    checked: int
    emit_metrics: bool
    features: Mapping[str, FeatureCounts] = field(default_factory=dict)
    violations: tuple[Violation, ...] = ()

    def by_check(self) -> dict[CheckType, int]:
        """How many constraints each check found violated (every check, 0 included)."""
        return {kind: sum(v.constraint_check_type is kind for v in self.violations) for kind in CheckType}

    def to_dict(self) -> dict[str, Any]:
        return {
            "constraints": self.source,
            "checked_records": self.checked,
            "counts": {name: asdict(counts) for name, counts in sorted(self.features.items())},
            "constraint_violations": violations_document(self.violations),
        }
