"""The model card: data, features, metrics per class and slice, importances, warnings, limits and lineage, in JSON
and in Markdown; and the registry keeps it beside the version, create-only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.common import model_card
from functions.common.bundle import ModelMetadata, pack_archive, read_metadata
from functions.common.registry import Registry, RegistryError, new_version_id
from tests.plugins.aws import MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LINEAGE = {
    "training_job_name": "driftloop-test-v1",
    "hyperparameters": {"target": "churned"},
    "champion_at_training": {"version": "v20261101-000000-aaaaaa", "sha256": "ab" * 32},
    "trigger": {"source": "alarm", "alarm_name": "driftloop-dev-drift"},
    "execution": "arn:aws:states:eu-west-1:1:execution:m:run-1",
    "data": {
        "uri": "s3://data/assembled/v1/",
        "manifest": "s3://data/assembled/v1/manifest.json",
        "counts": {"rows": {"base": 1800, "feedback": 150}},
    },
}


LOW_RECALL_WARNING = "class '1' has recall 0.20 on 90 holdout rows (below 0.5): the model misses most of it"


def evaluation() -> dict[str, Any]:
    """A stored evaluation as Register keeps it: a failed gate, a class with a low recall, a slice, importances,
    feedback rows held out."""
    return {
        "metric": "roc_auc",
        "min_slice_rows": 50,
        "holdout_rows": 400,
        "scored_rows": 400,
        "trusted_rows": 300,
        "challenger": {"roc_auc": 0.81, "accuracy": 0.77},
        "challenger_trusted": {"roc_auc": 0.8, "accuracy": 0.76},
        "champion": {"roc_auc": 0.83, "accuracy": 0.78},
        "challenger_confusion": {
            "labels": ["0", "1"],
            "counts": [[200, 10], [72, 18]],
            "per_class": {
                "0": {"rows": 210, "predicted": 272, "recall": 0.952, "f1": 0.83},
                "1": {"rows": 90, "predicted": 28, "recall": 0.2, "f1": 0.3},
            },
        },
        "slices": [{"feature": "contract", "level": "two_year", "rows": 80, "challenger": {"roc_auc": 0.7}}],
        "details": {"class_warnings": [LOW_RECALL_WARNING]},
        "importances": {
            "method": "permutation",
            "metric": "roc_auc",
            "baseline": 0.81,
            "rows": 400,
            "repeats": 5,
            "seed": 0,
            "features": [
                {"feature": "contract", "mean": 0.12, "std": 0.01},
                {"feature": "age", "mean": 0.0, "std": 0.0},
            ],
        },
        "passed": False,
        "held": False,
        "reasons": ["challenger roc_auc=0.81 does not beat the champion's 0.83"],
        "feedback_held_out": {"rows": 100, "new_values": {}},
    }


@pytest.fixture
def metadata(trained_bundle: Path) -> ModelMetadata:
    return read_metadata(trained_bundle)


def test_the_card_holds_data_features_metrics_importances_warnings_limits_and_lineage(metadata: ModelMetadata) -> None:
    card = model_card.build("v1", metadata, evaluation(), LINEAGE)

    assert card["data"]["rows"] == metadata.training_data["rows"]
    assert card["data"]["sources"] == {"trusted": 1800, "feedback": 150}
    assert card["data"]["holdout"] == {"rows": 400, "scored_rows": 400, "trusted_rows": 300}
    assert [f["name"] for f in card["features"]] == list(metadata.feature_names)
    tenure = next(f for f in card["features"] if f["name"] == "tenure_months")
    assert tenure["minimum"] is not None and tenure["maximum"] > tenure["minimum"]
    assert next(f for f in card["features"] if f["name"] == "contract")["categories"]
    metrics = card["metrics"]
    assert metrics["gate_metric"] == "roc_auc" and metrics["holdout"] == {"roc_auc": 0.81, "accuracy": 0.77}
    assert metrics["per_class"]["1"]["recall"] == 0.2
    assert metrics["slices"] == [{"feature": "contract", "level": "two_year", "rows": 80, "metrics": {"roc_auc": 0.7}}]
    assert metrics["training_job"] == metadata.metrics
    assert card["importances"]["features"][0] == {"feature": "contract", "mean": 0.12, "std": 0.01}
    warnings = "\n".join(card["warnings"])
    assert "the gate did not pass: challenger roc_auc=0.81 does not beat" in warnings
    assert LOW_RECALL_WARNING in warnings
    assert "100 feedback rows held out" in warnings
    assert "class '0'" not in warnings
    limits = "\n".join(card["limits"])
    assert f"'tenure_months' was seen in [{tenure['minimum']:.6g}, {tenure['maximum']:.6g}] in training" in limits
    assert "fewer than 50 trusted holdout rows" in limits
    assert card["lineage"] == {
        "version": "v1",
        "trained_at": metadata.created_at,
        "training_job": "driftloop-test-v1",
        "trigger": LINEAGE["trigger"],
        "champion_compared": "v20261101-000000-aaaaaa",
        "data_manifest": "s3://data/assembled/v1/manifest.json",
        "data_uri": "s3://data/assembled/v1/",
        "execution": LINEAGE["execution"],
        "source": None,
        "hyperparameters": metadata.hyperparameters,
        "libraries": metadata.libraries,
    }


def test_the_markdown_rendering_shows_the_same_facts_for_a_person(metadata: ModelMetadata) -> None:
    text = model_card.markdown(model_card.build("v1", metadata, evaluation(), LINEAGE))

    for heading in ("Data", "Features", "Metrics", "Importances", "Warnings", "Limits", "Lineage"):
        assert f"\n## {heading}\n" in text
    assert text.startswith("# Model card: v1\n")
    assert "- assembled: 1800 trusted rows, 150 feedback rows" in text
    assert "| 1 | 90 | 28 | 0.2 | 0.3 |" in text  # per class
    assert "| contract | two_year | 80 | 0.7 |" in text  # per slice
    assert "| contract | 0.12 | 0.01 |" in text  # importances
    assert "- trigger: alarm (driftloop-dev-drift); champion compared: v20261101-000000-aaaaaa" in text
    assert f"- {LOW_RECALL_WARNING}" in text


def test_a_version_registered_without_an_evaluation_gets_a_card_that_says_what_is_unknown(
    metadata: ModelMetadata,
) -> None:
    card = model_card.build("v1", metadata, None, {"source": "driftloop register ./model"})

    assert card["gate"] is None and card["importances"] is None and card["data"]["holdout"] is None
    assert card["warnings"][0].startswith("not scored by the workflow on a holdout")
    text = model_card.markdown(card)
    assert "Not measured" in text and "- source: driftloop register ./model" in text


def test_a_table_cell_cannot_break_the_markdown_table(metadata: ModelMetadata) -> None:
    scored = evaluation()
    scored["slices"] = [{"feature": "contract", "level": "a|b\nc", "rows": 80, "challenger": None}]

    text = model_card.markdown(model_card.build("v1", metadata, scored, LINEAGE))

    assert "| contract | a\\|b c | 80 | - |" in text


@pytest.fixture
def archive(trained_bundle: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    pack_archive(trained_bundle, path)
    return path


def test_register_stores_the_card_and_its_markdown_beside_the_version(
    registry: Registry, archive: Path, s3: S3Client, metadata: ModelMetadata
) -> None:
    version = new_version_id()
    registry.register(version, archive, evaluation=evaluation(), lineage=LINEAGE)

    card = registry.get_card(version)
    assert card is not None and card["version"] == version and card["importances"]["rows"] == 400
    markdown = s3.get_object(Bucket=MODEL_BUCKET, Key=registry.layout.card_markdown_key(version))["Body"].read()
    assert markdown.decode() == model_card.markdown(card)
    assert registry.layout.card_key(version) == f"registry/versions/{version}/model_card.json"


def test_a_version_registered_before_model_cards_has_none_and_stays_readable(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    version = new_version_id()
    registry.register(version, archive, evaluation=evaluation(), lineage=LINEAGE)
    for key in (registry.layout.card_key(version), registry.layout.card_markdown_key(version)):
        s3.delete_object(Bucket=MODEL_BUCKET, Key=key)

    assert registry.get_card(version) is None
    assert registry.get_version(version).evaluation == evaluation()


def test_a_registration_retried_after_writing_the_card_completes_and_another_card_is_refused(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    version = new_version_id()
    registry.register(version, archive, evaluation=evaluation(), lineage=LINEAGE)
    s3.delete_object(Bucket=MODEL_BUCKET, Key=registry.version_key(version, "version.json"))

    record = registry.register(version, archive, evaluation=evaluation(), lineage=LINEAGE)  # the same card again
    assert registry.get_version(version) == record

    other = new_version_id()
    registry.register(other, archive, evaluation=evaluation(), lineage=LINEAGE)
    s3.delete_object(Bucket=MODEL_BUCKET, Key=registry.version_key(other, "version.json"))
    with pytest.raises(RegistryError, match=r"model_card\.json already exists"):
        registry.register(other, archive, evaluation=None, lineage=LINEAGE)
