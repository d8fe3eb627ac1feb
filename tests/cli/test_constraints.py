"""``driftloop constraints``, in-process against moto: an operator's constraints.json, checked, stored, shown and
removed, with training's as the fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from functions.common.bundle import pack_archive, read_metadata
from functions.common.registry import Registry, new_version_id
from tests.plugins.aws import MODEL_BUCKET


def cli(*args: str) -> int:
    return main([*args, "--bucket", MODEL_BUCKET])


@pytest.fixture
def champion(registry: Registry, trained_bundle: Path, tmp_path: Path) -> str:
    archive = tmp_path / "model.tar.gz"
    pack_archive(trained_bundle, archive)
    version = new_version_id()
    registry.register(version, archive)
    registry.promote(version, expected=None)
    return version


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "constraints.json"
    path.write_text(json.dumps(document))
    return path


TENURE = {"name": "tenure_months", "inferred_type": "Fractional", "num_constraints": {"min": 0, "max": 120}}


def test_a_stored_file_is_what_the_monitor_applies_until_it_is_removed(
    champion: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], trained_bundle: Path
) -> None:
    assert "tenure_months" in read_metadata(trained_bundle).feature_names
    # Before: training's own, registered beside the version.
    assert cli("constraints", "show") == 0
    trained = capsys.readouterr().out
    assert trained.startswith(f"# {champion}: training: s3://{MODEL_BUCKET}/registry/versions/{champion}/")
    names = {feature["name"] for feature in json.loads(trained.split("\n", 1)[1])["features"]}
    assert names == set(read_metadata(trained_bundle).feature_names)

    assert cli("constraints", "set", str(write(tmp_path, {"version": 0, "features": [TENURE]}))) == 0
    assert "stored constraints for every version (1 features)" in capsys.readouterr().out
    assert cli("constraints", "show", "--version", champion) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# {champion}: operator, every version: ")
    assert json.loads(shown.split("\n", 1)[1])["features"][0]["num_constraints"] == {"min": 0, "max": 120}

    assert cli("constraints", "remove") == 0
    capsys.readouterr()
    assert cli("constraints", "show") == 0
    assert capsys.readouterr().out == trained


def test_a_file_for_one_version_must_name_its_features_with_their_types(
    champion: str, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {
        "version": 0,
        "features": [
            TENURE,
            {"name": "shoe_size", "inferred_type": "Integral"},
            {"name": "contract", "inferred_type": "Integral"},
        ],
    }

    assert cli("constraints", "set", str(write(tmp_path, document)), "--version", champion) == 1

    error = capsys.readouterr().err
    assert f"does not fit version {champion}" in error
    assert "feature 'shoe_size' is not one of the model's" in error
    assert "feature 'contract' is categorical, not Integral" in error
    assert registry.constraints(champion, {}) is None


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"features": [{"name": "x", "completeness": 1.5}]}, "feature 'x'.completeness must be between 0 and 1"),
        (
            {"features": [{"name": "plan", "inferred_type": "String", "num_constraints": {"is_non_negative": True}}]},
            "feature 'plan': num_constraints need an Integral or Fractional inferred_type, not String",
        ),
        ({"features": [{"name": "x", "inferred_type": "Text"}]}, "feature 'x': inferred_type must be one of"),
        ({"features": {}}, "features must be an array, got an object"),
        (
            {"features": [], "monitoring_config": {"emit_metrics": "yes"}},
            "monitoring_config.emit_metrics must be 'Enabled' or 'Disabled', got 'yes'",
        ),
        (
            {
                "features": [
                    {"name": "plan", "inferred_type": "String", "string_constraints": {"domains": ["x" * 9] * 30_000}}
                ]
            },
            "above Athena's 262144: check fewer features or shorten their domains (the longest: feature 'plan'",
        ),
    ],
)
def test_an_invalid_file_is_refused_with_the_feature_and_field_at_fault(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], reason: str
) -> None:
    assert cli("constraints", "set", str(write(tmp_path, document))) == 1

    assert reason in capsys.readouterr().err
    assert registry.constraints("v1", {}) is None
