"""Fixtures for batch scoring: the trained bundle loaded as the API loads it, and CSV text of the churn data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from functions.inference.model import Model, load_model

TARGET = "churned"


@pytest.fixture(scope="session")
def model(trained_bundle: Path) -> Model:
    return load_model(trained_bundle, source="test", version="v-test")


@pytest.fixture(scope="session")
def rows(churn_data: pd.DataFrame) -> pd.DataFrame:
    """Ten customers with their target, as a user's CSV would hold them (the target is not a feature)."""
    return churn_data.head(10).reset_index(drop=True)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()
