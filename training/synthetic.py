"""A synthetic customer-churn data set with knobs for covariate drift and concept drift.

Used by the tests, the demo and the benchmarks: a realistic mix of numeric and categorical features with
some missing values, and a binary target ``churned`` (0/1) that a forest learns well (ROC AUC around 0.85).

- ``covariate_drift`` (0 = none, 1 = strong) moves the feature distributions: shorter tenure, higher
  charges, more support calls and data usage, older customers, more month-to-month contracts and
  electronic checks, and a new ``central`` region (absent without drift) whose customers churn a lot.
  The churn rule itself is unchanged, yet a model trained without drift has never seen that region.
- ``concept_drift`` (0 = none, 1 = strong) blends the churn rule towards a different one: long-tenure
  customers on two-year contracts start leaving, support calls stop mattering, the region matters.

Every random draw is made up front from a generator seeded by ``seed`` and only then shaped by the drift
knobs, so the output is deterministic for a seed and rows stay paired across drift settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "churned"
CONTRACTS = ("month-to-month", "one_year", "two_year")
PAYMENT_METHODS = ("electronic_check", "mailed_check", "bank_transfer", "credit_card")
REGIONS = ("north", "south", "east", "west", "central")
# Fraction of values left out, per column.
MISSING_RATES = {"monthly_charges": 0.02, "data_usage_gb": 0.03, "age": 0.05, "payment_method": 0.02}


def _mix(base: tuple[float, ...], drifted: tuple[float, ...], amount: float) -> np.ndarray:
    weights = np.clip((1 - amount) * np.array(base) + amount * np.array(drifted), 0.0, None)
    return weights / weights.sum()


def _pick(uniform: np.ndarray, choices: tuple[str, ...], weights: np.ndarray) -> np.ndarray:
    # Inverse CDF, so one uniform draw per row serves every drift setting.
    index = np.searchsorted(np.cumsum(weights), uniform, side="right")
    return np.array(choices, dtype=object)[np.minimum(index, len(choices) - 1)]


def _poisson(uniform: np.ndarray, rate: np.ndarray) -> np.ndarray:
    counts = np.zeros(uniform.shape, dtype=np.int64)
    term = np.exp(-rate)
    cdf = term.copy()
    for k in range(1, 60):
        counts += uniform > cdf
        term = term * rate / k
        cdf = cdf + term
    return counts


def generate(rows: int, seed: int = 0, covariate_drift: float = 0.0, concept_drift: float = 0.0) -> pd.DataFrame:
    """Return ``rows`` customers with the target column ``churned``."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal((rows, 4))
    uniform = rng.random((rows, 5 + len(MISSING_RATES)))
    exponential = rng.standard_exponential(rows)
    c = covariate_drift

    tenure = np.clip(np.round(exponential * 22 * (1 - 0.2 * c)), 0, 72).astype(np.int64)
    contract = _pick(uniform[:, 0], CONTRACTS, _mix((0.5, 0.28, 0.22), (0.6, 0.25, 0.15), c))
    payment = _pick(uniform[:, 1], PAYMENT_METHODS, _mix((0.3, 0.2, 0.25, 0.25), (0.45, 0.1, 0.2, 0.25), c))
    region = _pick(uniform[:, 2], REGIONS, _mix((0.25, 0.25, 0.25, 0.25, 0.0), (0.1, 0.25, 0.1, 0.15, 0.4), c))
    data_usage = np.round(np.exp(2.3 + 0.6 * normal[:, 0] + 0.3 * c), 2)
    monthly = np.round(np.clip(45 + 1.6 * data_usage + 12 * normal[:, 1] + 5 * c, 18, 160), 2)
    age = np.round(np.clip(46 + 8 * c + 14 * normal[:, 2], 18, 90)).astype(float)
    support_calls = _poisson(uniform[:, 3], np.full(rows, 1.3 * (1 + 0.3 * c)) + 0.02 * (monthly - 60).clip(0))

    month_to_month = contract == "month-to-month"
    two_year = contract == "two_year"
    electronic = payment == "electronic_check"
    original = (
        -1.6
        + 2.0 * month_to_month
        - 1.2 * two_year
        - 0.07 * tenure
        + 0.7 * support_calls
        + 0.04 * (monthly - 65)
        + 0.1 * (monthly - 95).clip(0)
        + 2.5 * (region == "central")
        + 0.9 * electronic
        - 0.025 * (age - 45)
    )
    changed = (
        -0.8
        - 1.2 * month_to_month
        + 1.8 * two_year
        + 0.04 * tenure
        - 0.03 * (monthly - 65)
        + 1.8 * (region == "south")
        - 1.5 * (region == "north")
        + 0.04 * (age - 45)
    )
    logit = (1 - concept_drift) * original + concept_drift * changed + 0.3 * normal[:, 3]
    churned = (uniform[:, 4] < 1 / (1 + np.exp(-logit))).astype(np.int64)

    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "support_calls": support_calls,
            "data_usage_gb": data_usage,
            "age": age,
            "contract": contract,
            "payment_method": payment,
            "region": region,
            TARGET: churned,
        }
    )
    for offset, (column, rate) in enumerate(MISSING_RATES.items()):
        frame.loc[uniform[:, 5 + offset] < rate, column] = None
    return frame


def write_csv(path: Path, rows: int, seed: int = 0, covariate_drift: float = 0.0, concept_drift: float = 0.0) -> Path:
    """Write :func:`generate`'s output as CSV (header row, empty cells for missing values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(rows, seed, covariate_drift, concept_drift).to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--covariate-drift", type=float, default=0.0)
    parser.add_argument("--concept-drift", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    path = write_csv(args.out, args.rows, args.seed, args.covariate_drift, args.concept_drift)
    print(f"wrote {args.rows} rows to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
