"""Every fact the gate judges (:class:`functions.common.gate.Scores`), computed from predictions, not from models.

A model is scored by its outputs on the holdout rows (:class:`Predictions`: class probabilities, or values), so the
same code serves the training job, which predicts with its fitted pipeline, and a step that only runs ONNX bundles.

Metrics, the same for the challenger and the champion: classification ``accuracy``, ``f1`` and ``roc_auc`` (of the
positive class when binary: the run's ``positive_class``, else ``labels[1]``; macro F1 and one-vs-rest macro ROC AUC
otherwise) and ``log_loss``; the predicted class is the model's answer when it says one (a decision threshold's),
else the most probable one (the first on a tie). Regression: ``rmse``, ``mae``, ``r2``. Each equals
scikit-learn's (ROC AUC averages the ranks of ties; log loss clips probabilities to [eps, 1 - eps]; F1 of a class
neither present nor predicted is 0; r2 on constant targets is 1 when exact, else 0). A metric undefined on the rows
(ROC AUC on one class, r2 on one row, a true class the model does not know) is left out, so the gate says it cannot
be computed instead of comparing NaNs.

Numpy and the standard library only: a Lambda imports this module.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from functions.common.bundle import FeatureType, Task
from functions.common.gate import (
    BOOTSTRAP_CONFIDENCE,
    TASK_METRICS,
    Bootstrap,
    Confusion,
    Interval,
    Scores,
    Slice,
    gain,
)

# A class the model finds less than this share of is reported (seattle weather's drizzle: recall 0.09).
MIN_CLASS_RECALL = 0.5
# Numeric features are cut at this many quantiles of the fit rows to score them alone: fine enough that a feature
# which sorts the target (an id numbered by outcome) reaches a near-perfect score.
SINGLE_FEATURE_BINS = 100
# Draws of a small holdout: enough that the 5th percentile moves by well under a point between seeds; cheap, as
# only the metrics are recomputed (the predictions are the models' once).
BOOTSTRAP_RESAMPLES = 1000


class ScoringError(ValueError):
    """Predictions that do not fit the holdout (row count, probability columns)."""


@dataclass(frozen=True)
class Predictions:
    """One model's outputs on all holdout rows."""

    # Classification: the model's classes, in the column order of ``probabilities``.
    labels: tuple[str, ...] = ()
    # Classification: (n, len(labels)) class probabilities.
    probabilities: np.ndarray | None = None
    # Regression: (n,) predicted values.
    values: np.ndarray | None = None
    # Classification: each row's answer as a position in ``labels`` when the model says it (a graph's ``label``
    # output, which a decision threshold may set); None: the most probable class (the first on a tie).
    chosen: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.probabilities is not None:
            probabilities = np.asarray(self.probabilities, dtype=np.float64)
            if probabilities.ndim != 2 or probabilities.shape[1] != len(self.labels):
                raise ScoringError(
                    f"probabilities must have one column per label ({len(self.labels)}), got shape "
                    f"{probabilities.shape}"
                )
            object.__setattr__(self, "probabilities", probabilities)
        if self.values is not None:
            object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float64).reshape(-1))
        if (self.probabilities is None) == (self.values is None):
            raise ScoringError("predictions hold either class probabilities or values, not both or neither")
        if self.chosen is not None:
            chosen = np.asarray(self.chosen, dtype=np.int64).reshape(-1)
            if len(chosen) != len(self) or self.probabilities is None:
                raise ScoringError(f"{len(chosen)} answers for {len(self)} rows of class probabilities")
            object.__setattr__(self, "chosen", chosen)

    @classmethod
    def answered(cls, labels: tuple[str, ...], probabilities: np.ndarray, answers: np.ndarray) -> Predictions:
        """A classifier's probabilities and its answers (labels, e.g. a graph's ``label`` output)."""
        index = {label: i for i, label in enumerate(labels)}
        strange = sorted({str(answer) for answer in answers.tolist() if answer not in index})
        if strange:
            raise ScoringError(f"the model answers label(s) {', '.join(map(repr, strange))} outside its classes")
        chosen = np.fromiter((index[answer] for answer in answers.tolist()), dtype=np.int64, count=len(answers))
        return cls(labels, probabilities=probabilities, chosen=chosen)

    def __len__(self) -> int:
        outputs = self.probabilities if self.probabilities is not None else self.values
        assert outputs is not None
        return len(outputs)

    def take(self, positions: np.ndarray) -> Predictions:
        if self.probabilities is not None:
            chosen = None if self.chosen is None else self.chosen[positions]
            return Predictions(self.labels, probabilities=self.probabilities[positions], chosen=chosen)
        assert self.values is not None
        return Predictions(values=self.values[positions])

    def indices(self) -> np.ndarray:
        """Classification: each row's predicted class, as a position in ``labels``."""
        assert self.probabilities is not None, "regression predictions have no classes"
        if self.chosen is not None:
            return self.chosen
        return np.asarray(self.probabilities.argmax(axis=1), dtype=np.int64)


def thresholded(probabilities: np.ndarray, positive: int, threshold: float) -> np.ndarray:
    """Each row's answer, as a position among two classes, when the positive one (column ``positive``) is answered
    at a probability of at least ``threshold``: the rule a decision threshold bakes into a model's graph."""
    return np.where(np.asarray(probabilities)[:, positive] >= threshold, positive, 1 - positive).astype(np.int64)


@dataclass(frozen=True)
class Holdout:
    """The rows both models are scored on, and what the gate's facts are measured on. Positions index all arrays."""

    task: Task
    # (n,) object array of label strings (classification) or floats (regression).
    truth: np.ndarray
    # Per feature: float64 with NaN for missing (numeric), or an object array of str, None for missing (categorical).
    columns: Mapping[str, np.ndarray]
    # The features the challenger uses.
    types: Mapping[str, FeatureType]
    # Positions both models are scored on (rows the champion never saw).
    scored: np.ndarray
    # Positions among ``scored`` that are not feedback.
    trusted: np.ndarray
    # Positions the single-feature bins and means are fitted on (in training: the challenger's fit rows)...
    feature_fit: np.ndarray
    # ...and those single-feature scores are measured on (in training: the scored rows).
    feature_scored: np.ndarray
    holdout_rows: int
    # Holdout rows the champion was fitted on, excluded from scoring; None: unknown, or no champion.
    champion_seen: int | None
    # Binary classification: the class F1 is of (None: each model's second class).
    positive_class: str | None = None

    def __post_init__(self) -> None:
        rows = len(self.truth)
        missing = [name for name in self.types if name not in self.columns]
        if missing:
            raise ScoringError(f"the holdout has no column for the feature(s) {', '.join(map(repr, missing))}")
        uneven = [f"{name!r} ({len(self.columns[name])})" for name in self.types if len(self.columns[name]) != rows]
        if uneven:
            raise ScoringError(f"the holdout has {rows} rows but column(s) {', '.join(uneven)} do not")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """The chance a positive row scores above a negative one, ties counting half; NaN without both kinds."""
    positives = int(positive.sum())
    negatives = len(positive) - positives
    if not positives or not negatives:
        return math.nan
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _f1(actual: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of one class from the rows that are it and the rows predicted as it; 0 when neither has any."""
    hits = int((actual & predicted).sum())
    support = int(actual.sum()) + int(predicted.sum())
    return 2 * hits / support if support else 0.0


def _positive(labels: tuple[str, ...], positive: str | None) -> int:
    if positive is None:
        return 1
    if positive not in labels:
        raise ScoringError(f"the positive class {positive!r} is not one of the model's classes {labels}")
    return labels.index(positive)


def _classification(truth: np.ndarray, predictions: Predictions, positive: str | None) -> dict[str, float]:
    labels, probabilities = predictions.labels, predictions.probabilities
    assert probabilities is not None
    chosen = predictions.indices()
    # One boolean mask per class; a row in none of them is of a class the model does not know.
    actual = np.stack([truth == label for label in labels], axis=1)
    known = actual.any(axis=1).all()
    predicted = chosen[:, None] == np.arange(len(labels))
    if len(labels) == 2:
        i = _positive(labels, positive)
        f1 = _f1(actual[:, i], predicted[:, i])
        auc = roc_auc(actual[:, i], probabilities[:, i])
    else:
        f1 = float(np.mean([_f1(actual[:, i], predicted[:, i]) for i in range(len(labels))]))
        # One-vs-rest needs every row's class among the model's.
        aucs = [roc_auc(actual[:, i], probabilities[:, i]) for i in range(len(labels))]
        auc = float(np.mean(aucs)) if known else math.nan
    eps = np.finfo(np.float64).eps
    truest = np.clip(probabilities, eps, 1 - eps)[actual]  # one per row when every class is known
    return {
        "accuracy": float(np.mean(actual[np.arange(len(truth)), chosen])),
        "f1": f1,
        "roc_auc": auc,
        "log_loss": float(np.mean(-np.log(truest))) if known else math.nan,
    }


def _r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    if len(truth) < 2:
        return math.nan
    residual = float(np.sum((truth - predicted) ** 2))
    spread = float(np.sum((truth - np.mean(truth)) ** 2))
    if spread == 0:
        return 1.0 if residual == 0 else 0.0
    return 1 - residual / spread


def _regression(truth: np.ndarray, predictions: Predictions) -> dict[str, float]:
    assert predictions.values is not None
    truth = np.asarray(truth, dtype=np.float64)
    errors = truth - predictions.values
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": _r2(truth, predictions.values),
    }


def metrics(
    task: Task, truth: np.ndarray, predictions: Predictions, positive: str | None = None
) -> dict[str, float] | None:
    """One model's metrics on some rows (``truth`` and ``predictions`` row for row); None without rows.
    A metric undefined on them is left out. ``positive``: a binary classifier's positive class (None: its second)."""
    if len(truth) != len(predictions):
        raise ScoringError(f"{len(predictions)} predictions for {len(truth)} rows")
    if not len(truth):
        return None
    if task == "classification":
        found = _classification(truth, predictions, positive)
    else:
        found = _regression(truth, predictions)
    return {name: value for name, value in found.items() if math.isfinite(value)}


def confusion(truth: np.ndarray, predictions: Predictions) -> Confusion:
    """Over the model's own classes; rows of a class the model does not know are left out."""
    labels = predictions.labels
    index = {label: i for i, label in enumerate(labels)}
    actual = np.fromiter((index.get(value, -1) for value in truth), dtype=np.int64, count=len(truth))
    known = actual >= 0
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(counts, (actual[known], predictions.indices()[known]), 1)
    return Confusion(labels, tuple(tuple(int(n) for n in row) for row in counts))


def class_warnings(matrix: Confusion) -> tuple[str, ...]:
    """A warning per class whose recall is below :data:`MIN_CLASS_RECALL`: the model misses most of its rows."""
    found = []
    for i, label in enumerate(matrix.labels):
        recall = matrix.recall(label)
        if recall is not None and recall < MIN_CLASS_RECALL:
            found.append(
                f"class {label!r} has recall {recall:.2f} on {sum(matrix.counts[i])} holdout rows (below "
                f"{MIN_CLASS_RECALL}): the model misses most of it; class_weight (or, binary, decision_threshold) "
                "trades other classes' precision for it"
            )
    return tuple(found)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _distinct(values: np.ndarray) -> int:
    """Distinct values, missing ones not counted."""
    if values.dtype.kind == "f":
        return len(np.unique(values[~np.isnan(values)]))
    return len({value for value in values.tolist() if not _is_missing(value)})


def distinct_predictions(predictions: Predictions) -> int:
    if predictions.values is not None:
        return _distinct(predictions.values)
    return len(np.unique(predictions.indices()))


def encode_target(task: Task, truth: np.ndarray) -> np.ndarray:
    """Floats for regression; for classification each row's index among the sorted labels."""
    if task == "regression":
        return np.asarray(truth, dtype=np.float64)
    return np.unique(np.asarray([str(value) for value in truth], dtype=object), return_inverse=True)[1]


def _codes(column: np.ndarray) -> np.ndarray:
    """One integer per distinct category, in order of appearance; missing values share one of their own."""
    index: dict[object, int] = {}
    return np.fromiter(
        (index.setdefault(None if _is_missing(value) else value, len(index)) for value in column.tolist()),
        dtype=np.int64,
        count=len(column),
    )


def _keys(column: np.ndarray, kind: FeatureType, fit: np.ndarray) -> np.ndarray:
    """One integer key per row: the category, or the quantile bin of the fit rows' values; missing values share a
    key of their own."""
    if kind == "categorical":
        return _codes(column)
    values = np.asarray(column, dtype=np.float64)
    known = values[fit][~np.isnan(values[fit])]
    cuts = np.linspace(0, 1, SINGLE_FEATURE_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(known, cuts)) if len(known) else np.empty(0)
    return np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values, side="right"))


def _binned_alone(task: Task, keys: np.ndarray, target: np.ndarray, fit: np.ndarray, scored: np.ndarray) -> float:
    """The target's mean (class shares) per key on the fit rows, scored on the scored rows; a key the fit rows
    lack gets the fit rows' overall mean (shares)."""
    size = int(keys.max(initial=0)) + 1
    rows = np.bincount(keys[fit], minlength=size).astype(float)
    seen = rows[keys[scored]] > 0
    if task == "regression":
        means = np.bincount(keys[fit], weights=target[fit], minlength=size) / np.maximum(rows, 1)
        return _r2(target[scored], np.where(seen, means[keys[scored]], target[fit].mean()))
    classes = int(target.max()) + 1
    flat = np.bincount(keys[fit] * classes + target[fit], minlength=size * classes)
    counts = flat.reshape(size, classes).astype(float)
    shares = counts / np.maximum(rows, 1)[:, None]
    probabilities = np.where(seen[:, None], shares[keys[scored]], counts.sum(axis=0) / len(fit))
    actual = target[scored]
    if classes == 2:
        return roc_auc(actual == 1, probabilities[:, 1])
    present = np.unique(actual)
    probabilities = probabilities[:, present] / np.maximum(probabilities[:, present].sum(axis=1, keepdims=True), 1e-12)
    return float(np.mean([roc_auc(actual == label, probabilities[:, i]) for i, label in enumerate(present)]))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    scale = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.clip(np.dot(a, b) / scale, -1.0, 1.0)) if scale else math.nan


def _monotone_alone(task: Task, values: np.ndarray, target: np.ndarray) -> float:
    """How well a numeric feature's own order sorts the target, either way: bins blur an exact copy."""
    known = ~np.isnan(values)
    values, target = values[known], target[known]
    if task == "regression":
        return _pearson(_average_ranks(values), _average_ranks(target)) ** 2
    if target.max(initial=0) != 1:  # binary only
        return math.nan
    auc = roc_auc(target == 1, values)
    return max(auc, 1 - auc)


def feature_alone(
    task: Task, column: np.ndarray, kind: FeatureType, target: np.ndarray, fit: np.ndarray, scored: np.ndarray
) -> float | None:
    """How well one feature alone, fitted on the ``fit`` rows, predicts the target (:func:`encode_target`) on the
    ``scored`` rows (gate.SINGLE_FEATURE_METRIC: ROC AUC, or r2). None where undefined (one class, or no rows)."""
    actual = target[scored]
    if len(np.unique(actual)) < 2:
        return None
    scores = [_binned_alone(task, _keys(column, kind, fit), target, fit, scored)]
    if kind == "numeric":
        scores.append(_monotone_alone(task, np.asarray(column, dtype=np.float64)[scored], actual))
    finite = [score for score in scores if math.isfinite(score)]
    return max(finite) if finite else None


def feature_scores(holdout: Holdout) -> dict[str, float]:
    """Per feature the challenger uses, its score alone (gate.SINGLE_FEATURE_METRIC); undefined ones left out."""
    target = encode_target(holdout.task, holdout.truth)
    scores = {}
    for name, kind in holdout.types.items():
        score = feature_alone(
            holdout.task, holdout.columns[name], kind, target, holdout.feature_fit, holdout.feature_scored
        )
        if score is not None:
            scores[name] = score
    return scores


def slices(holdout: Holdout, challenger: Predictions, champion: Predictions, min_rows: int) -> tuple[Slice, ...]:
    """Both models on each level of each categorical feature among the trusted rows that has ``min_rows``, most
    rows first (ties in order of appearance)."""
    trusted, found = holdout.trusted, []
    for name, kind in holdout.types.items():
        if kind != "categorical":
            continue
        levels = holdout.columns[name][trusted]
        counts = Counter(level for level in levels.tolist() if not _is_missing(level))
        for level, rows in counts.most_common():
            if rows < min_rows:
                break
            positions = trusted[levels == level]
            truth = holdout.truth[positions]
            found.append(
                Slice(
                    feature=name,
                    level=str(level),
                    rows=rows,
                    challenger=metrics(holdout.task, truth, challenger.take(positions), holdout.positive_class),
                    champion=metrics(holdout.task, truth, champion.take(positions), holdout.positive_class),
                )
            )
    return tuple(found)


def no_skill(task: Task, truth: np.ndarray, like: Predictions) -> Predictions:
    """What a model that learnt nothing predicts on these rows: each of ``like``'s classes with its share of the
    rows, or the rows' mean."""
    if task == "regression":
        return Predictions(values=np.full(len(truth), float(np.mean(np.asarray(truth, dtype=np.float64)))))
    shares = np.array([np.count_nonzero(truth == label) for label in like.labels], dtype=np.float64)
    shares /= max(shares.sum(), 1.0)
    return Predictions(like.labels, probabilities=np.tile(shares, (len(truth), 1)))


def _interval(draws: list[float]) -> Interval | None:
    """From the (1 - BOOTSTRAP_CONFIDENCE) to the BOOTSTRAP_CONFIDENCE quantile of the finite draws; None when half
    of them or more are not finite (a metric undefined on most draws is not bounded)."""
    values = np.asarray(draws, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values) or len(values) * 2 <= len(draws):
        return None
    low, high = np.quantile(values, [1 - BOOTSTRAP_CONFIDENCE, BOOTSTRAP_CONFIDENCE])
    return float(low), float(high)


def _intervals(draws: Mapping[str, list[float]]) -> dict[str, Interval]:
    found = {name: _interval(values) for name, values in draws.items()}
    return {name: interval for name, interval in found.items() if interval is not None}


def bootstrap(
    task: Task,
    truth: np.ndarray,
    positions: np.ndarray,
    challenger: Predictions,
    champion: Predictions | None,
    seed: int,
    positive: str | None = None,
) -> Bootstrap:
    """:class:`functions.common.gate.Bootstrap` on the rows at ``positions``: BOOTSTRAP_RESAMPLES draws of as many
    of them with replacement (``seed``: the same draws on every run), each scored for the challenger, the no-skill
    baseline of those rows and the champion (when compared). ``positive``: a binary classifier's positive class."""
    truth = truth[positions]
    models = {"challenger": challenger.take(positions), "baseline": no_skill(task, truth, challenger)}
    if champion is not None:
        models["champion"] = champion.take(positions)
    gains = {"over_baseline": "baseline", "over_champion": "champion"}
    draws: dict[str, dict[str, list[float]]] = {
        kind: {metric: [] for metric in TASK_METRICS[task]} for kind in ("challenger", *gains)
    }
    rng = np.random.default_rng(seed)
    for _ in range(BOOTSTRAP_RESAMPLES):
        drawn = rng.integers(0, len(truth), len(truth))
        found = {name: metrics(task, truth[drawn], model.take(drawn), positive) or {} for name, model in models.items()}
        for metric, values in draws["challenger"].items():
            mine = found["challenger"].get(metric, math.nan)
            values.append(mine)
            for kind, other in gains.items():
                if other in found:
                    theirs = found[other].get(metric, math.nan)
                    draws[kind][metric].append(gain(metric, mine, theirs))
    return Bootstrap(
        rows=len(positions),
        resamples=BOOTSTRAP_RESAMPLES,
        seed=seed,
        confidence=BOOTSTRAP_CONFIDENCE,
        challenger=_intervals(draws["challenger"]),
        over_baseline=_intervals(draws["over_baseline"]),
        over_champion=None if champion is None else _intervals(draws["over_champion"]),
    )


def score(
    holdout: Holdout,
    challenger: Predictions,
    champion: Predictions | None,
    *,
    min_slice_rows: int,
    champion_given: bool,
    champion_not_compared: str | None,
    bootstrap_below: int = 0,
    bootstrap_seed: int = 0,
) -> Scores:
    """Both models on the scored holdout rows and on the trusted ones among them, and the facts the gate's
    guardrails judge. ``champion``: the champion's predictions when it is compared, else None. Either set of rows
    with fewer than ``bootstrap_below`` rows (the gate's min_scored_rows) is also resampled (:func:`bootstrap`)."""
    task, truth = holdout.task, holdout.truth
    for who, predictions in (("challenger", challenger), ("champion", champion)):
        if predictions is not None and len(predictions) != len(truth):
            raise ScoringError(f"the {who}'s predictions cover {len(predictions)} rows, the holdout {len(truth)}")

    def on(predictions: Predictions, positions: np.ndarray) -> dict[str, float] | None:
        return metrics(task, truth[positions], predictions.take(positions), holdout.positive_class)

    def matrix(predictions: Predictions) -> Confusion | None:
        if task != "classification":
            return None
        return confusion(truth[holdout.trusted], predictions.take(holdout.trusted))

    def resampled(positions: np.ndarray) -> Bootstrap | None:
        if not 0 < len(positions) < bootstrap_below:
            return None
        return bootstrap(task, truth, positions, challenger, champion, bootstrap_seed, holdout.positive_class)

    scored = holdout.scored
    small = resampled(scored)
    return Scores(
        holdout_rows=holdout.holdout_rows,
        challenger=on(challenger, scored),
        trusted_rows=len(holdout.trusted),
        challenger_trusted=on(challenger, holdout.trusted),
        champion_given=champion_given,
        champion=None if champion is None else on(champion, scored),
        champion_trusted=None if champion is None else on(champion, holdout.trusted),
        champion_seen_rows=holdout.champion_seen,
        champion_not_compared=champion_not_compared,
        distinct_predictions=distinct_predictions(challenger.take(scored)),
        distinct_targets=_distinct(truth[scored]),
        challenger_confusion=matrix(challenger),
        champion_confusion=None if champion is None else matrix(champion),
        slices=None if champion is None else slices(holdout, challenger, champion, min_slice_rows),
        feature_scores=feature_scores(holdout),
        bootstrap=small,
        # Without feedback the trusted rows are the scored ones: the same draws.
        bootstrap_trusted=small if np.array_equal(holdout.trusted, scored) else resampled(holdout.trusted),
    )
