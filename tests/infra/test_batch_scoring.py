"""The batch scoring state machine in the serving stack: a Distributed Map over the input prefix's objects with a
tolerated failure share, and roles that reach only their own prefixes."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from functions.batch.layout import BATCH
from infra.constructs.batch_scoring import FAILED_ERROR, MAX_CONCURRENCY
from tests.infra.conftest import build, cdk_context, function_environment
from tests.infra.test_serving_stack import role_policy

DATA_BUCKET = {"Fn::ImportValue": "driftloop-dev-DataBucketName"}


def definition(template: Template) -> dict[str, Any]:
    """The batch state machine's ASL, with each CloudFormation token as its JSON text."""
    [machine] = [
        resource
        for resource in template.find_resources("AWS::StepFunctions::StateMachine").values()
        if resource["Properties"]["StateMachineName"] == "driftloop-dev-batch"
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else json.dumps(json.dumps(part))[1:-1] for part in parts)
    return dict(json.loads(text))


def objects(prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", DATA_BUCKET, f"/{prefix}*"]]}


def resources_of(statements: list[dict[str, Any]], action: str) -> list[Any]:
    found = []
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            resource = statement["Resource"]
            found += resource if isinstance(resource, list) else [resource]
    return found


def test_the_run_resolves_once_then_maps_over_the_objects_of_the_input_prefix(serving_template: Template) -> None:
    asl = definition(serving_template)
    assert asl["StartAt"] == "ResolveRequest"
    assert asl["States"]["ResolveRequest"]["Next"] == "ScoreObjects"
    assert asl["States"]["ResolveRequest"]["Parameters"] == {"request.$": "$", "run.$": "$$.Execution.Name"}
    scoring = asl["States"]["ScoreObjects"]
    assert scoring["Type"] == "Map"
    reader = scoring["ItemReader"]
    assert reader["Resource"].endswith(":states:::s3:listObjectsV2")
    assert reader["Parameters"]["Prefix.$"] == "$.job.prefix"
    assert scoring["ItemSelector"] == {"key.$": "$$.Map.Item.Value.Key", "job.$": "$.job"}
    assert scoring["ToleratedFailurePercentagePath"] == "$.job.tolerated_failure_percent"
    assert scoring["MaxConcurrency"] == MAX_CONCURRENCY
    assert scoring["ResultWriter"]["Parameters"]["Prefix"] == BATCH.map_results_prefix
    # Its results go to S3: the state keeps only the job, whatever the number of objects.
    assert scoring["ResultPath"] is None


def test_each_object_is_one_standard_child_invoking_the_score_function(serving_template: Template) -> None:
    processor = definition(serving_template)["States"]["ScoreObjects"]["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    task = processor["States"][processor["StartAt"]]
    assert "ScoreFunction" in task["Resource"]
    assert task["Parameters"] == {"key.$": "$.key", "job.$": "$.job"}
    assert "States.TaskFailed" not in {error for retry in task["Retry"] for error in retry["ErrorEquals"]}


def test_the_summary_decides_even_when_the_map_stops_early(serving_template: Template) -> None:
    states = definition(serving_template)["States"]
    assert states["ScoreObjects"]["Next"] == "SummariseRun"
    assert states["ScoreObjects"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.map_error", "Next": "SummariseRun"}
    ]
    assert states["Verdict"]["Choices"][0]["Variable"] == "$.summary.outcome"
    assert states["BatchFailed"] == {"Type": "Fail", "Error": FAILED_ERROR, "CausePath": "$.summary.message"}
    assert states["Scored"]["OutputPath"] == "$.summary"


def test_the_state_machine_lists_only_the_input_prefix_and_writes_only_map_results(serving_template: Template) -> None:
    statements = role_policy(serving_template, "BatchScoringRole")
    listing = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert [s["Condition"] for s in listing] == [{"StringLike": {"s3:prefix": [BATCH.input_prefix + "*"]}}]
    assert resources_of(statements, "s3:PutObject") == [objects(BATCH.map_results_prefix)]
    assert resources_of(statements, "s3:GetObject") == [objects(BATCH.map_results_prefix)]


def test_each_function_reaches_only_its_own_prefixes(serving_template: Template) -> None:
    score = role_policy(serving_template, "BatchScoringScoreRole")
    assert objects(BATCH.input_prefix) in resources_of(score, "s3:GetObject")
    assert sorted(map(json.dumps, resources_of(score, "s3:PutObject"))) == sorted(
        json.dumps(objects(prefix)) for prefix in (BATCH.output_prefix, BATCH.runs_prefix)
    )
    # Its captures leave through its log (the capture stream's subscription): no Firehose call.
    assert resources_of(score, "firehose:PutRecordBatch") == []
    resolve = role_policy(serving_template, "BatchScoringResolveRole")
    assert resources_of(resolve, "s3:PutObject") == []
    assert "DataBucket" not in json.dumps(resources_of(resolve, "s3:GetObject"))
    summarise = role_policy(serving_template, "BatchScoringSummariseRole")
    assert resources_of(summarise, "s3:GetObject") == [objects(BATCH.runs_prefix)]
    assert resources_of(summarise, "s3:PutObject") == [objects(BATCH.runs_prefix)]


def test_the_score_function_has_the_serving_memory_and_lambdas_longest_timeout(serving_template: Template) -> None:
    serving_template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "functions.batch.handlers.score_handler", "MemorySize": 1024, "Timeout": 900},
    )


def test_without_capture_the_score_function_has_no_stream_to_capture_to() -> None:
    template = Template.from_stack(build(cdk_context(overrides={"capture": {"enabled": False}})).serving)
    assert "DRIFTLOOP_CAPTURE_STREAM" not in function_environment(template, "functions.batch.handlers.score_handler")
    assert resources_of(role_policy(template, "BatchScoringScoreRole"), "firehose:PutRecordBatch") == []
