"""The local SageMaker refuses a job AWS would not run as driftloop's training program (sagemaker_runner.refusals).

It runs the repository's program whatever the job names, so anything else the job asks for (an SKLearn image and
its train.py, ModelTrainer's source_code, a built-in algorithm) must be refused, not silently replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from driftloop_localstack.sagemaker_runner import PROGRAM_ENTRYPOINT, refusals

REPO = Path(__file__).resolve().parents[2]
DRIFTLOOP_IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/driftloop-training:local"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
# What the SageMaker SDK's ModelTrainer sends for a source_code job (sagemaker.train.constants).
MODEL_TRAINER_ENTRYPOINT = ["/bin/bash"]
MODEL_TRAINER_ARGUMENTS = [
    "-c",
    "chmod +x /opt/ml/input/data/sm_drivers/sm_train.sh && /opt/ml/input/data/sm_drivers/sm_train.sh",
]


def algorithm(image: str = DRIFTLOOP_IMAGE, **more: Any) -> dict[str, Any]:
    return {"TrainingImage": image, "TrainingInputMode": "File", **more}


def test_driftloop_image_with_its_own_entry_point_is_accepted_whatever_its_tag_or_digest() -> None:
    assert refusals(algorithm(), {"target": "churned"}, ["train", "champion"]) == []
    digest = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/driftloop-training@sha256:" + "a" * 64
    assert refusals(algorithm(digest), {}, ["train"]) == []
    explicit = algorithm(ContainerEntrypoint=["python", "-m", "training"], ContainerArguments=["train"])
    assert refusals(explicit, {}, ["train"]) == []
    # ModelTrainer's code channel without its entry point: AWS would run driftloop's program, which ignores it.
    assert refusals(algorithm(), {}, ["train", "code", "sm_drivers"]) == []


def test_an_sklearn_script_mode_job_is_refused_naming_the_image_and_the_script() -> None:
    hyperparameters = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://b/src.tar.gz"'}
    problems = refusals(algorithm(SKLEARN_IMAGE), hyperparameters, ["train"])
    assert problems == [
        f"AlgorithmSpecification.TrainingImage '{SKLEARN_IMAGE}' is not driftloop's training image (an ECR image of "
        "repository driftloop-training)",
        "HyperParameters.sagemaker_program '\"train.py\"' asks script mode to run a script",
        "HyperParameters.sagemaker_submit_directory '\"s3://b/src.tar.gz\"' asks script mode to run a script",
    ]


def test_model_trainer_source_code_is_refused_naming_its_entry_point_and_code_channel() -> None:
    spec = algorithm(ContainerEntrypoint=MODEL_TRAINER_ENTRYPOINT, ContainerArguments=MODEL_TRAINER_ARGUMENTS)
    (problem,) = refusals(spec, {"target": "churned"}, ["train", "code", "sm_drivers"])
    assert problem.startswith("ContainerEntrypoint ['/bin/bash'] with ContainerArguments ['-c', 'chmod +x ")
    assert "(the 'code' channel's script: the SDK's source_code)" in problem
    assert problem.endswith("not driftloop's ['python', '-m', 'training', 'train']")


def test_other_images_algorithms_and_arguments_are_refused() -> None:
    assert len(refusals(algorithm("000000000000.dkr.ecr.us-east-1.amazonaws.com/other:local"), {}, [])) == 1
    assert len(refusals(algorithm("driftloop-training:local"), {}, [])) == 1
    assert refusals({"AlgorithmName": "xgboost", "TrainingInputMode": "File"}, {}, []) == [
        "AlgorithmSpecification.AlgorithmName 'xgboost' names an algorithm"
    ]
    (problem,) = refusals(algorithm(ContainerArguments=["serve"]), {}, [])
    assert problem.startswith("ContainerEntrypoint None with ContainerArguments ['serve'] runs another command")


def test_the_accepted_image_and_entry_point_are_those_the_repository_deploys_and_builds() -> None:
    local_stage = json.loads((REPO / "cdk.json").read_text())["context"]["driftloop:stages"]["local"]
    assert refusals(algorithm(local_stage["training"]["image_uri"]), {}, ["train"]) == []
    entrypoint = next(
        line.split(maxsplit=1)[1]
        for line in (REPO / "training" / "Dockerfile").read_text().splitlines()
        if line.startswith("ENTRYPOINT")
    )
    assert json.loads(entrypoint) == PROGRAM_ENTRYPOINT
