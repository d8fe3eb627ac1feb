"""The model card: what a registered version is, what it was trained and checked on, and what it was not.

Built once, when the version is registered (:meth:`functions.common.registry.Registry.register` stores it beside
the version, create-only), from three things the registry already keeps: the bundle's metadata (features, the
ranges and categories seen in training, the job's own metrics and warnings), the evaluation the gate judged
(Evaluate's holdout scores: overall, per class, per slice, with its importances and the verdict) and the run's
lineage (job, trigger, champion compared, data manifest). :func:`build` gives the JSON card and
:func:`markdown` its readable rendering; both are deterministic, so a retried registration writes the same bytes.

Every input section may be missing (a version registered by hand has no evaluation; an older evaluation has no
importances or slices): the card then says so instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from functions.common.bundle import ModelMetadata

FORMAT = 1
# Categories listed per feature in the Markdown rendering (the JSON card lists them all).
LISTED_CATEGORIES = 12


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _data(metadata: ModelMetadata, evaluation: Mapping[str, Any], lineage: Mapping[str, Any]) -> dict[str, Any]:
    training = metadata.training_data
    assembled = _mapping(_mapping(_mapping(lineage.get("data")).get("counts")).get("rows"))
    return {
        "rows": training.get("rows"),
        "train_rows": training.get("train_rows"),
        "files": len(training.get("files") or ()),
        "sha256": training.get("sha256"),
        # What Assemble gathered, by source: trusted training data and labelled feedback (None: not assembled by
        # the workflow).
        "sources": {"trusted": assembled.get("base"), "feedback": assembled.get("feedback")} if assembled else None,
        "holdout": {
            "rows": evaluation.get("holdout_rows"),
            "scored_rows": evaluation.get("scored_rows"),
            "trusted_rows": evaluation.get("trusted_rows"),
        }
        if evaluation
        else None,
    }


def _metrics(metadata: ModelMetadata, evaluation: Mapping[str, Any]) -> dict[str, Any]:
    confusion = _mapping(evaluation.get("challenger_confusion"))
    return {
        "gate_metric": evaluation.get("metric") or metadata.primary_metric,
        "holdout": evaluation.get("challenger"),
        "holdout_trusted": evaluation.get("challenger_trusted"),
        "champion": evaluation.get("champion"),
        "per_class": confusion.get("per_class"),
        "slices": [
            {key: part.get(key) for key in ("feature", "level", "rows")} | {"metrics": part.get("challenger")}
            for part in evaluation.get("slices") or ()
        ],
        # The training job's own report, on its own split: informational.
        "training_job": dict(metadata.metrics),
    }


def _warnings(metadata: ModelMetadata, evaluation: Mapping[str, Any]) -> list[str]:
    found = []
    if not evaluation:
        found.append("not scored by the workflow on a holdout: only the training job's own metrics are known")
    elif evaluation.get("held"):
        found.append("held for a person to approve: " + "; ".join(evaluation.get("reasons") or ()))
    elif not evaluation.get("passed"):
        found.append("the gate did not pass: " + "; ".join(evaluation.get("reasons") or ()))
    if evaluation.get("job_verdict"):
        found.append("the training job's own verdict differs from the gate's, which decides")
    if evaluation.get("champion_not_compared"):
        found.append(f"not compared with the champion: {evaluation['champion_not_compared']}")
    held = _mapping(evaluation.get("feedback_held_out"))
    if held.get("rows"):
        found.append(f"{held['rows']} feedback rows held out of training and scoring as values new to the champion")
    # Classes the model misses most of: scoring.class_warnings words them, on Evaluate's holdout.
    found.extend(_mapping(evaluation.get("details")).get("class_warnings") or ())
    found.extend(f"training: {warning}" for warning in metadata.warnings)
    return found


def _limits(metadata: ModelMetadata, evaluation: Mapping[str, Any]) -> list[str]:
    found = []
    for feature in metadata.features:
        if feature.type == "numeric" and feature.minimum is not None and feature.maximum is not None:
            found.append(
                f"{feature.name!r} was seen in [{feature.minimum:.6g}, {feature.maximum:.6g}] in training: values "
                "outside it were never checked"
            )
        elif feature.type == "categorical":
            found.append(
                f"{feature.name!r}: only its {len(feature.categories)} categories seen in training are told apart; "
                "any other is encoded as unknown"
            )
    if metadata.task == "classification":
        found.append(f"predicts only the classes seen in training: {', '.join(metadata.classes)}")
    if evaluation.get("slices") is None:
        found.append("not scored per slice (no champion compared, or an older evaluation)")
    else:
        found.append(
            f"slices with fewer than {evaluation.get('min_slice_rows')} trusted holdout rows were not scored separately"
        )
    return found


def _lineage(version: str, metadata: ModelMetadata, lineage: Mapping[str, Any]) -> dict[str, Any]:
    data = _mapping(lineage.get("data"))
    champion = _mapping(lineage.get("champion_at_training"))
    return {
        "version": version,
        "trained_at": metadata.created_at,
        "training_job": lineage.get("training_job_name"),
        "trigger": lineage.get("trigger"),
        "champion_compared": champion.get("version"),
        "data_manifest": data.get("manifest"),
        "data_uri": data.get("uri"),
        "execution": lineage.get("execution"),
        "source": lineage.get("source"),
        "hyperparameters": dict(metadata.hyperparameters),
        "libraries": dict(metadata.libraries),
    }


def build(
    version: str, metadata: ModelMetadata, evaluation: Mapping[str, Any] | None, lineage: Mapping[str, Any]
) -> dict[str, Any]:
    """The card of ``version``: ``evaluation`` as the registry stores it (None: registered without one)."""
    scored = evaluation or {}
    return {
        "format": FORMAT,
        "version": version,
        "task": metadata.task,
        "target": metadata.target,
        "algorithm": metadata.algorithm,
        "classes": list(metadata.classes),
        "data": _data(metadata, scored, lineage),
        "features": [feature.to_dict() for feature in metadata.features],
        "metrics": _metrics(metadata, scored),
        "importances": scored.get("importances"),
        "gate": {key: scored.get(key) for key in ("passed", "held", "reasons")} if evaluation else None,
        "warnings": _warnings(metadata, scored),
        "limits": _limits(metadata, scored),
        "lineage": _lineage(version, metadata, lineage),
    }


# -- the readable rendering ------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A value in a Markdown table cell: numbers to 4 significant digits, pipes and line breaks escaped."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def _seen(feature: Mapping[str, Any]) -> str:
    if feature.get("type") == "numeric":
        return f"{_cell(feature.get('minimum'))} to {_cell(feature.get('maximum'))}"
    categories = [str(c) for c in feature.get("categories") or ()]
    more = len(categories) - LISTED_CATEGORIES
    return ", ".join(categories[:LISTED_CATEGORIES]) + (f" and {more} more" if more > 0 else "")


def _trigger(trigger: Any) -> str | None:
    if not isinstance(trigger, Mapping):
        return None
    words = [str(trigger[key]) for key in ("alarm_name", "reason", "key") if trigger.get(key)]
    return str(trigger.get("source", "?")) + (f" ({'; '.join(words)})" if words else "")


def markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown: the same facts as its JSON, for a person."""
    data, metrics, lineage = _mapping(card.get("data")), _mapping(card.get("metrics")), _mapping(card.get("lineage"))
    gate_metric = metrics.get("gate_metric")
    lines = [
        f"# Model card: {card.get('version')}",
        "",
        f"{card.get('algorithm')} {card.get('task')} of `{card.get('target')}`, trained {lineage.get('trained_at')}.",
        "",
        "## Data",
        "",
        f"- {_cell(data.get('rows'))} training rows from {_cell(data.get('files'))} file(s) "
        f"({_cell(data.get('train_rows'))} fitted), sha256 {_cell(data.get('sha256'))}",
    ]
    if sources := _mapping(data.get("sources")):
        trusted, feedback = _cell(sources.get("trusted")), _cell(sources.get("feedback"))
        lines.append(f"- assembled: {trusted} trusted rows, {feedback} feedback rows")
    if holdout := _mapping(data.get("holdout")):
        lines.append(
            f"- holdout: {_cell(holdout.get('rows'))} rows, {_cell(holdout.get('scored_rows'))} scored, "
            f"{_cell(holdout.get('trusted_rows'))} trusted"
        )
    lines += ["", "## Features", ""]
    lines += _table(
        ("feature", "type", "seen in training"),
        ((f.get("name"), f.get("type"), _seen(f)) for f in card.get("features") or ()),
    )
    lines += ["", "## Metrics", "", f"The gate's metric: {gate_metric}.", ""]
    named = {"holdout": "holdout", "holdout_trusted": "trusted holdout", "champion": "champion, holdout"}
    named["training_job"] = "training job's own split"
    measured = [(title, _mapping(metrics.get(key))) for key, title in named.items() if metrics.get(key)]
    names = sorted({name for _, values in measured for name in values})
    header = ("metric", *(title for title, _ in measured))
    lines += _table(header, ((name, *(values.get(name) for _, values in measured)) for name in names))
    if per_class := _mapping(metrics.get("per_class")):
        lines += ["", "Per class, on the trusted holdout rows:", ""]
        lines += _table(
            ("class", "rows", "predicted", "recall", "F1"),
            (
                (label, facts.get("rows"), facts.get("predicted"), facts.get("recall"), facts.get("f1"))
                for label, facts in per_class.items()
            ),
        )
    if slices := metrics.get("slices"):
        lines += ["", "Per slice, on the trusted holdout rows:", ""]
        lines += _table(
            ("feature", "level", "rows", str(gate_metric)),
            (
                (s.get("feature"), s.get("level"), s.get("rows"), _mapping(s.get("metrics")).get(str(gate_metric)))
                for s in slices
            ),
        )
    lines += ["", "## Importances", ""]
    if importances := _mapping(card.get("importances")):
        lines += [
            f"Drop of {importances.get('metric')} (from {_cell(importances.get('baseline'))}) when one feature is "
            f"shuffled: {importances.get('rows')} holdout rows, {importances.get('repeats')} shuffles each.",
            "",
        ]
        lines += _table(
            ("feature", "mean drop", "std"),
            ((f.get("feature"), f.get("mean"), f.get("std")) for f in importances.get("features") or ()),
        )
    else:
        lines.append("Not measured (registered without a workflow evaluation, or before importances).")
    lines += ["", "## Warnings", ""]
    lines += [f"- {_cell(text)}" for text in card.get("warnings") or ()] or ["None."]
    lines += ["", "## Limits", ""]
    lines += [f"- {_cell(text)}" for text in card.get("limits") or ()]
    lines += [
        "",
        "## Lineage",
        "",
        f"- version {lineage.get('version')}, training job {_cell(lineage.get('training_job'))}",
        f"- trigger: {_cell(_trigger(lineage.get('trigger')))}; champion compared: "
        f"{_cell(lineage.get('champion_compared'))}",
        f"- data manifest: {_cell(lineage.get('data_manifest'))}",
    ]
    if lineage.get("source"):
        lines.append(f"- source: {_cell(lineage['source'])}")
    hyperparameters = _mapping(lineage.get("hyperparameters"))
    lines.append("- hyperparameters: " + (", ".join(f"{k}={v}" for k, v in sorted(hyperparameters.items())) or "-"))
    return "\n".join(lines) + "\n"
