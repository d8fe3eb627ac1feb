"""Body benchmark: what refusing repeated JSON keys adds to reading a request body.

Run with ``python -m tests.benchmarks.bench_body`` (part of ``make bench``). For /predict bodies of 1 and 100
instances and a /feedback batch of 100 items, the median time of ``orjson.loads`` alone (the parse before) and of
``functions.inference.body.decode`` (the parse, the key count against the body's colons, and the standard
parser's second reading when the count cannot rule repeats out), and their ratio. "colon in a value" bodies carry
a category with a ``:``, which the count cannot tell from a member's colon: those take the second reading.
Prints the table; exits non-zero only when it cannot run.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from functions.common.records import new_prediction_ids
from functions.inference.body import decode
from functions.inference.feedback import BATCH_FIELD
from functions.inference.schema import INSTANCES
from tests.prediction_ids import ID_KEY

RUNS = 3000
# The synthetic churn data's shape: numeric and categorical features.
ROW = {
    "age": 42,
    "tenure": 17.5,
    "monthly_charges": 70.35,
    "total_charges": 1230.4,
    "support_calls": 3,
    "contract": "month-to-month",
    "region": "north",
    "payment_method": "credit_card",
    "internet": "fiber",
    "paperless": "yes",
}


def median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bodies() -> dict[str, tuple[bytes, str]]:
    ids = new_prediction_ids(100, datetime.now(UTC), ID_KEY)
    colon = ROW | {"region": "eu:north"}
    return {
        "predict, 1 row": (json.dumps({INSTANCES: [ROW]}).encode(), INSTANCES),
        "predict, 100 rows": (json.dumps({INSTANCES: [ROW] * 100}).encode(), INSTANCES),
        "feedback, 100 items": (
            json.dumps({BATCH_FIELD: [{"prediction_id": i, "label": "1"} for i in ids]}).encode(),
            BATCH_FIELD,
        ),
        "predict, 1 row, colon in a value": (json.dumps({INSTANCES: [colon]}).encode(), INSTANCES),
        "predict, 100 rows, colon in a value": (json.dumps({INSTANCES: [colon] * 100}).encode(), INSTANCES),
    }


def main() -> int:
    print("reading a request body (median): orjson alone vs with the repeated-key check")
    print(f"{'body':>36}  {'orjson':>9}  {'checked':>9}  {'ratio':>6}")
    for name, (body, collection) in bodies().items():
        before = median_seconds(functools.partial(orjson.loads, body))
        after = median_seconds(functools.partial(decode, body, print, collection))
        print(f"{name:>36}  {before * 1e6:>7.1f}us  {after * 1e6:>7.1f}us  {after / before:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
