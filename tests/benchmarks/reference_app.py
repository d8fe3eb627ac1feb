"""The benchmark's reference: a model served the way the AWS serverless-inference samples do it.

FastAPI + Mangum + scikit-learn + pandas: the bundle's ``model.joblib`` pipeline is loaded at import, and each
request becomes a pandas DataFrame for ``predict_proba``. Two choices favour the reference, so that the ratios
the benchmark reports are conservative: an ``async`` endpoint (a sync one adds a thread-pool hop) and
``lifespan="off"`` (the samples' default runs the lifespan on every invocation).

``REFERENCE_MODEL_DIR`` names the extracted bundle.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel

from functions.common.bundle import MISSING_CATEGORY

MODEL_DIR = Path(os.environ["REFERENCE_MODEL_DIR"])
model = joblib.load(MODEL_DIR / "model.joblib")
features = json.loads((MODEL_DIR / "metadata.json").read_text())["features"]
NUMERIC = [f["name"] for f in features if f["type"] == "numeric"]
CATEGORICAL = [f["name"] for f in features if f["type"] == "categorical"]
CLASSES = [str(c) for c in model.classes_]


class PredictRequest(BaseModel):
    instances: list[dict[str, Any]]


app = FastAPI()


@app.post("/predict")
async def predict(request: PredictRequest) -> dict[str, Any]:
    frame = pd.DataFrame(request.instances)
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    frame[CATEGORICAL] = frame[CATEGORICAL].fillna(MISSING_CATEGORY)
    probabilities = model.predict_proba(frame)
    return {
        "predictions": [
            {
                "prediction_id": uuid.uuid4().hex,
                "label": CLASSES[int(row.argmax())],
                "probabilities": dict(zip(CLASSES, row.tolist(), strict=True)),
            }
            for row in probabilities
        ]
    }


handler = Mangum(app, lifespan="off")
