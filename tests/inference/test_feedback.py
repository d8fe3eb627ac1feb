"""POST /feedback through the Lambda handler: ground truth for served predictions, validated item by item."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from functions.common.records import (
    PREDICTION_ID_LENGTH,
    Caller,
    FeedbackRecord,
    IdKey,
    new_prediction_ids,
    time_prefix,
    to_json_lines,
)
from functions.inference.capture import DeliveryFailed, Record
from functions.inference.settings import InferenceSettings
from tests.inference.conftest import TARGET, Api, FailingSink, MakeApi, RecordingSink, assert_valid_emf, instances
from tests.prediction_ids import ID_KEY


def served_ids(api: Api, rows: list[dict[str, Any]]) -> list[str]:
    reply = api.predict(rows)
    assert reply.status == 200, reply.body
    return [p["prediction_id"] for p in reply.json["predictions"]]


def details(reply: Any) -> list[tuple[int | None, str | None, str]]:
    return [(d["instance"], d["field"], d["problem"]) for d in reply.json["details"]]


def test_feedback_for_a_served_prediction_is_accepted_with_202_and_recorded(
    api: Api, feedback_sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    [prediction_id] = served_ids(api, rows[:1])
    before = datetime.now(UTC)

    reply = api.feedback({"prediction_id": prediction_id, "label": "1"})

    assert reply.status == 202, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.json == {"accepted": 1}
    [record] = feedback_sink.feedback
    assert (record.prediction_id, record.label, record.value) == (prediction_id, "1", None)
    assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(record.time) <= datetime.now(UTC)
    assert record.time.endswith("+00:00")


def test_a_batch_of_feedback_is_accepted_and_recorded_in_one_write_in_order(
    api: Api, feedback_sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    ids = served_ids(api, rows)
    labels = ["0", "1", "1", "0", "1"]

    pairs = list(zip(ids, labels, strict=True))

    reply = api.feedback({"feedback": [{"prediction_id": i, "label": label} for i, label in pairs]})

    assert reply.status == 202, reply.body
    assert reply.json == {"accepted": 5}
    [batch] = feedback_sink.batches
    assert [(r.prediction_id, r.label) for r in batch if isinstance(r, FeedbackRecord)] == pairs


def test_feedback_for_a_regression_model_takes_a_finite_number_as_value(
    make_api: MakeApi, regression_bundle: Path, churn_data: pd.DataFrame
) -> None:
    sink = RecordingSink()
    api = make_api(InferenceSettings(model_dir=regression_bundle), feedback=sink)
    ids = served_ids(api, instances(churn_data, 3, drop=(TARGET, "monthly_charges")))

    reply = api.feedback(
        {"feedback": [{"prediction_id": ids[0], "value": 71.25}, {"prediction_id": ids[1], "value": 3}]}
    )

    assert reply.status == 202, reply.body
    assert [(r.prediction_id, r.value, r.label) for r in sink.feedback] == [(ids[0], 71.25, None), (ids[1], 3.0, None)]
    assert isinstance(sink.feedback[1].value, float)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("71.25", "expected a number, got string"),
        (True, "expected a number, got boolean"),
        (None, "expected a number, got null"),
    ],
)
def test_a_regression_value_that_is_not_a_number_returns_422(
    make_api: MakeApi, regression_bundle: Path, value: Any, problem: str
) -> None:
    api = make_api(InferenceSettings(model_dir=regression_bundle), feedback=RecordingSink())
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    reply = api.feedback({"prediction_id": prediction_id, "value": value})

    assert reply.status == 422, reply.body
    assert details(reply) == [(None, "value", problem)]


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("NaN", "expected a finite number (not NaN or Infinity)"),
        ("Infinity", "expected a finite number (not NaN or Infinity)"),
        ("-Infinity", "expected a finite number (not NaN or Infinity)"),
        ("1e400", "out of range: the number is beyond a 64-bit float (magnitude at most 1.8e308)"),
    ],
)
def test_a_non_finite_regression_value_returns_422_naming_the_item(
    make_api: MakeApi, regression_bundle: Path, token: str, problem: str
) -> None:
    api = make_api(InferenceSettings(model_dir=regression_bundle), feedback=RecordingSink())
    ids = new_prediction_ids(2, datetime.now(UTC), ID_KEY)
    body = json.dumps({"feedback": [{"prediction_id": ids[0], "value": 1.0}, {"prediction_id": ids[1], "value": 0}]})

    reply = api.call("POST", "/feedback", body.replace('"value": 0}', f'"value": {token}}}'))

    assert reply.status == 422, reply.body
    assert details(reply) == [(1, "value", problem)]


def test_an_id_with_a_wrong_mac_returns_422(api: Api, rows: list[dict[str, Any]]) -> None:
    [prediction_id] = served_ids(api, rows[:1])
    tampered = prediction_id[:-1] + ("0" if prediction_id[-1] != "0" else "1")

    reply = api.feedback({"prediction_id": tampered, "label": "1"})

    assert reply.status == 422
    assert reply.json["error"] == "validation_failed"
    assert details(reply) == [(None, "prediction_id", "no prediction was served with this id (its MAC does not match)")]


def unkeyed(body: str, digits: int) -> str:
    """The checksum ids carried before they had a MAC: an unkeyed blake2b of the rest, which anyone can compute."""
    return hashlib.blake2b(body.encode(), digest_size=digits // 2).hexdigest()


def test_an_id_minted_with_the_old_unkeyed_checksum_returns_422(api: Api) -> None:
    body = time_prefix(datetime.now(UTC)) + "0123456789ab"
    # The format of issue 13's forgery, and the same forgery stretched to today's length under the API's key tag.
    old_format = body + unkeyed(body, 8)
    tagged = body + ID_KEY.tag
    new_length = tagged + unkeyed(tagged, PREDICTION_ID_LENGTH - len(tagged))

    reply = api.feedback({"feedback": [{"prediction_id": i, "label": "1"} for i in (old_format, new_length)]})

    assert reply.status == 422, reply.body
    assert details(reply) == [
        (0, "prediction_id", f"a prediction id is {PREDICTION_ID_LENGTH} hex digits"),
        (1, "prediction_id", "no prediction was served with this id (its MAC does not match)"),
    ]


def test_an_id_minted_with_a_key_of_ones_own_returns_422(api: Api, feedback_sink: RecordingSink) -> None:
    own = IdKey(b"a key the attacker chose, at least 32 bytes long")
    [forged] = new_prediction_ids(1, datetime.now(UTC), own)
    # Even one that happens to carry the API's key tag: the tag only picks the key, the MAC decides.
    same_tag = forged[:24] + ID_KEY.tag + forged[28:]

    reply = api.feedback({"feedback": [{"prediction_id": i, "label": "1"} for i in (forged, same_tag)]})

    assert reply.status == 422, reply.body
    assert [problem for _, _, problem in details(reply)][1] == (
        "no prediction was served with this id (its MAC does not match)"
    )
    assert feedback_sink.feedback == []


@pytest.mark.parametrize(
    ("prediction_id", "problem"),
    [
        ("abc", f"a prediction id is {PREDICTION_ID_LENGTH} hex digits"),
        ("z" * PREDICTION_ID_LENGTH, "a prediction id is lowercase hex digits only (0-9, a-f)"),
        (12, "expected a string, got number"),
    ],
)
def test_a_malformed_id_returns_422(api: Api, prediction_id: Any, problem: str) -> None:
    reply = api.feedback({"prediction_id": prediction_id, "label": "1"})
    assert reply.status == 422
    assert details(reply) == [(None, "prediction_id", problem)]


def test_an_id_from_the_future_returns_422(api: Api) -> None:
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC) + timedelta(hours=1), ID_KEY)

    reply = api.feedback({"prediction_id": prediction_id, "label": "1"})

    assert reply.status == 422
    assert details(reply) == [
        (None, "prediction_id", "the id's time is in the future: no prediction was served with this id")
    ]


def test_an_id_older_than_the_maximum_age_returns_422(make_api: MakeApi, trained_bundle: Path) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle, feedback_max_age_days=7), feedback=RecordingSink())
    now = datetime.now(UTC)
    old, recent = new_prediction_ids(1, now - timedelta(days=7, minutes=1), ID_KEY) + new_prediction_ids(
        1, now - timedelta(days=6), ID_KEY
    )

    too_old = api.feedback({"prediction_id": old, "label": "1"})
    in_time = api.feedback({"prediction_id": recent, "label": "1"})

    assert too_old.status == 422
    assert details(too_old) == [
        (None, "prediction_id", "the prediction is older than 7 days: its feedback is no longer accepted")
    ]
    assert in_time.status == 202, in_time.body


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("maybe", "unknown class 'maybe': expected one of '0', '1'"),
        (1, "expected a string, one of '0', '1'; got number"),
        (None, "expected a string, one of '0', '1'; got null"),
    ],
)
def test_a_label_that_is_not_one_of_the_model_s_classes_as_a_string_returns_422(
    api: Api, feedback_sink: RecordingSink, label: Any, problem: str
) -> None:
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    reply = api.feedback({"prediction_id": prediction_id, "label": label})

    assert reply.status == 422
    assert details(reply) == [(None, "label", problem)]
    assert feedback_sink.batches == []


def test_unknown_and_missing_keys_are_reported(api: Api) -> None:
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    reply = api.feedback({"feedback": [{"prediction_id": prediction_id, "value": 1.0, "note": "x"}, {"label": "1"}]})

    assert reply.status == 422
    assert details(reply) == [
        (0, "value", 'unknown field: the model is a classifier, send the true class as "label"'),
        (0, "note", 'unknown field (an item holds "prediction_id" and "label")'),
        (0, "label", "missing: the true class, one of '0', '1'"),
        (1, "prediction_id", "missing: the prediction_id the prediction was served with"),
    ]


def test_every_offending_item_of_a_batch_is_listed_and_nothing_is_recorded(
    api: Api, feedback_sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    ids = served_ids(api, rows[:3])
    [future] = new_prediction_ids(1, datetime.now(UTC) + timedelta(days=1), ID_KEY)
    items: list[Any] = [
        {"prediction_id": ids[0], "label": "1"},
        {"prediction_id": future, "label": "yes"},
        "not an object",
        {"prediction_id": ids[0], "label": "0"},
    ]

    reply = api.feedback({"feedback": items})

    assert reply.status == 422
    assert [(instance, field) for instance, field, _ in details(reply)] == [
        (1, "prediction_id"),
        (1, "label"),
        (2, None),
        (3, "prediction_id"),
    ]
    assert details(reply)[3][2] == "duplicate: item 0 has the same prediction_id"
    assert reply.json["message"] == "the request has 4 problems: see details"
    assert feedback_sink.batches == []


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"feedback": []}, "feedback", "empty: send 1 to 100 items"),
        ({"feedback": [{}] * 101}, "feedback", "101 items: at most 100 per request"),
        ({"feedback": {"prediction_id": "x"}}, "feedback", "expected an array of feedback objects, got object"),
        ({"feedback": [{}], "label": "1"}, "label", 'unknown field (a batch body holds only "feedback")'),
        ([1, 2], None, "expected an object, got array"),
    ],
)
def test_a_body_that_is_neither_an_item_nor_a_batch_returns_422(
    api: Api, body: Any, field: str | None, problem: str
) -> None:
    reply = api.feedback(body)
    assert reply.status == 422
    assert (None, field, problem) in details(reply)


def test_the_batch_limit_is_the_prediction_batch_limit(make_api: MakeApi, trained_bundle: Path) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle, max_instances=2), feedback=RecordingSink())
    items = [{"prediction_id": i, "label": "0"} for i in new_prediction_ids(3, datetime.now(UTC), ID_KEY)]
    assert api.feedback({"feedback": items[:2]}).status == 202
    assert api.feedback({"feedback": items}).status == 422


def test_malformed_json_returns_400(api: Api) -> None:
    reply = api.call("POST", "/feedback", '{"prediction_id": ')
    assert reply.status == 400
    assert reply.json["error"] == "malformed_json"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            '{"prediction_id": "__ID__", "label": "1", "label": "0"}',
            [(None, "label", "repeated key: given 2 times at the top level")],
            id="a single item's label",
        ),
        pytest.param(
            '{"feedback": [{"prediction_id": "__ID__", "label": "0"}, {"label": "1", "prediction_id": "__ID__", '
            '"label": "0"}]}',
            [(1, "label", "repeated key: given 2 times in the object at /feedback/1")],
            id="a batch item's label",
        ),
        pytest.param(
            '{"feedback": [{"prediction_id": "__ID__", "label": "1"}], "feedback": []}',
            [(None, "feedback", "repeated key: given 2 times at the top level")],
            id="the batch",
        ),
    ],
)
def test_a_repeated_key_in_feedback_returns_422_naming_the_key_and_records_nothing(
    api: Api, feedback_sink: RecordingSink, template: str, expected: list[tuple[int | None, str, str]]
) -> None:
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    reply = api.call("POST", "/feedback", template.replace("__ID__", prediction_id))

    assert reply.status == 422, reply.body
    assert details(reply) == expected
    assert feedback_sink.batches == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json; charset=latin-1"])
def test_a_body_not_declared_as_utf8_json_returns_415(api: Api, content_type: str | None) -> None:
    reply = api.call("POST", "/feedback", '{"feedback": []}', content_type=content_type)
    assert reply.status == 415
    assert reply.json["error"] == "unsupported_media_type"


def test_a_body_over_the_size_limit_returns_413(make_api: MakeApi, trained_bundle: Path) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle, max_body_bytes=256), feedback=RecordingSink())
    items = [{"prediction_id": i, "label": "0"} for i in new_prediction_ids(5, datetime.now(UTC), ID_KEY)]
    reply = api.feedback({"feedback": items})
    assert reply.status == 413
    assert reply.json["error"] == "body_too_large"


def test_feedback_only_takes_post(api: Api) -> None:
    reply = api.call("GET", "/feedback", content_type=None)
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"


def test_without_a_model_feedback_returns_503(make_api: MakeApi) -> None:
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)
    reply = make_api(InferenceSettings(), feedback=RecordingSink()).feedback(
        {"prediction_id": prediction_id, "label": "1"}
    )
    assert reply.status == 503
    assert reply.json["error"] == "model_unavailable"


def test_a_feedback_sink_failure_returns_503_asking_to_retry_and_is_logged_and_counted(
    make_api: MakeApi, trained_bundle: Path
) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle), feedback=FailingSink())
    items = [{"prediction_id": i, "label": "1"} for i in new_prediction_ids(3, datetime.now(UTC), ID_KEY)]

    reply = api.feedback({"feedback": items})

    assert reply.status == 503
    assert reply.json["error"] == "feedback_unavailable"
    assert reply.json["message"] == (
        "the feedback could not be recorded (3 of 3 items failed): send the same request again shortly"
    )
    assert reply.headers["retry-after"] == "1"
    [failure] = api.log_messages("recording feedback failed; the client was asked to retry")
    assert failure["level"] == "ERROR" and failure["lost"] == 3
    assert "ConnectionError: the delivery stream is unreachable" in failure["stack"]
    [request] = api.log_messages("request")
    assert_valid_emf(request)
    assert (request["status"], request["ServerErrors"], request["Feedback"], request["FeedbackFailures"]) == (
        503,
        1,
        0,
        3,
    )


class PartlyFailingSink:
    def write(self, records: Sequence[Record]) -> None:
        raise DeliveryFailed("1 of 2 records not delivered (ServiceUnavailableException x1)", lost=1)


def test_a_partial_feedback_failure_returns_503_naming_how_many_failed(make_api: MakeApi, trained_bundle: Path) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle), feedback=PartlyFailingSink())
    items = [{"prediction_id": i, "label": "0"} for i in new_prediction_ids(2, datetime.now(UTC), ID_KEY)]

    reply = api.feedback({"feedback": items})

    assert reply.status == 503
    assert "(1 of 2 items failed)" in reply.json["message"]
    [request] = api.log_messages("request")
    assert (request["Feedback"], request["FeedbackFailures"]) == (1, 1)


def test_accepted_feedback_is_counted_in_the_request_metrics(api: Api) -> None:
    items = [{"prediction_id": i, "label": "0"} for i in new_prediction_ids(4, datetime.now(UTC), ID_KEY)]

    api.feedback({"feedback": items})

    [request] = api.log_messages("request")
    assert_valid_emf(request)
    assert (request["route"], request["status"], request["feedback_items"]) == ("/feedback", 202, 4)
    assert (request["Feedback"], request["FeedbackFailures"], request["ClientErrors"]) == (4, 0, 0)
    assert "Predictions" not in request and "CaptureFailures" not in request


def test_without_a_feedback_stream_feedback_goes_to_the_log(
    make_api: MakeApi, trained_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle))
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    assert api.feedback({"prediction_id": prediction_id, "label": "0"}).status == 202

    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["message"] == "feedback"
    caller = Caller(source_ip="203.0.113.7")
    assert FeedbackRecord.from_dict(line) == FeedbackRecord(prediction_id, line["time"], label="0", caller=caller)


def test_the_openapi_document_describes_feedback_for_the_live_model(
    api: Api, make_api: MakeApi, regression_bundle: Path
) -> None:
    document = api.call("GET", "/openapi.json", content_type=None).json
    operation = document["paths"]["/feedback"]["post"]
    assert {"202", "400", "413", "415", "422", "500", "503"} <= set(operation["responses"])
    schemas = document["components"]["schemas"]
    item = schemas["FeedbackItem"]
    assert item["required"] == ["prediction_id", "label"]
    assert item["properties"]["label"]["enum"] == ["0", "1"]
    assert item["additionalProperties"] is False
    assert schemas["FeedbackBatch"]["properties"]["feedback"]["maxItems"] == 100
    assert "feedback_unavailable" in schemas["Error"]["properties"]["error"]["enum"]
    assert "30 days" in document["info"]["description"]

    regression = (
        make_api(InferenceSettings(model_dir=regression_bundle)).call("GET", "/openapi.json", content_type=None).json
    )
    assert regression["components"]["schemas"]["FeedbackItem"]["required"] == ["prediction_id", "value"]


def test_an_id_whose_time_is_past_year_9999_returns_422_naming_the_field(api: Api) -> None:
    # Only a key holder can mint this id, yet the API would never: the time is checked all the same.
    forged = ID_KEY.sign("ffffffffffff" + "0123456789ab")

    reply = api.feedback({"feedback": [{"prediction_id": forged, "label": "1"}]})

    assert reply.status == 422, reply.body
    assert details(reply) == [
        (0, "prediction_id", "no prediction was served with this id (its time is past year 9999)")
    ]


def test_an_uppercase_id_returns_422_as_this_service_issues_lowercase_ids(
    api: Api, feedback_sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    [prediction_id] = served_ids(api, rows[:1])

    reply = api.feedback({"prediction_id": prediction_id.upper(), "label": "1"})

    assert reply.status == 422
    assert details(reply) == [(None, "prediction_id", "a prediction id is lowercase hex digits only (0-9, a-f)")]
    assert feedback_sink.batches == []


SIGNED = {"userArn": "arn:aws:sts::123456789012:assumed-role/labeller/session-1", "caller": "AROAEXAMPLE:session-1"}


@pytest.mark.parametrize(
    ("identity", "caller"),
    [
        pytest.param(
            {"userArn": "arn:aws:iam::123456789012:user/labeller", "caller": "AIDAEXAMPLE"},
            Caller(principal="arn:aws:iam::123456789012:user/labeller", source_ip="203.0.113.7"),
            id="IAM: the ARN",
        ),
        pytest.param(
            SIGNED,
            Caller(principal="arn:aws:iam::123456789012:role/labeller", source_ip="203.0.113.7", session="session-1"),
            id="IAM, an assumed role: the role's ARN, the session apart",
        ),
        pytest.param(
            {"caller": "AROAEXAMPLE:session-1", "user": "AROAEXAMPLE:session-1"},
            Caller(principal="AROAEXAMPLE", source_ip="203.0.113.7", session="session-1"),
            id="IAM, an assumed role without an ARN: the role's id, the session apart",
        ),
        pytest.param(
            {"user": "AIDAEXAMPLE"},
            Caller(principal="AIDAEXAMPLE", source_ip="203.0.113.7"),
            id="IAM with only the user: its principal id",
        ),
        pytest.param(
            {"caller": "AIDAEXAMPLE", "sourceIp": "198.51.100.4"},
            Caller(principal="AIDAEXAMPLE", source_ip="198.51.100.4"),
            id="IAM without an ARN: the principal id",
        ),
        pytest.param(
            {"apiKeyId": "a1b2c3d4e5", "apiKey": "the-secret-key-value"},
            Caller(api_key_id="a1b2c3d4e5", source_ip="203.0.113.7"),
            id="API key: its id",
        ),
        pytest.param({}, Caller(source_ip="203.0.113.7"), id="neither: the source IP"),
    ],
)
def test_feedback_records_carry_the_caller_api_gateway_identified(
    api: Api, feedback_sink: RecordingSink, identity: dict[str, str], caller: Caller
) -> None:
    items = [{"prediction_id": i, "label": "1"} for i in new_prediction_ids(2, datetime.now(UTC), ID_KEY)]

    reply = api.feedback({"feedback": items}, identity=identity)

    assert reply.status == 202, reply.body
    assert [record.caller for record in feedback_sink.feedback] == [caller, caller]
    assert "the-secret-key-value" not in to_json_lines(feedback_sink.feedback).decode()


def test_feedback_from_a_thousand_sessions_of_one_role_is_recorded_as_one_caller(
    api: Api, feedback_sink: RecordingSink
) -> None:
    ids = new_prediction_ids(1000, datetime.now(UTC), ID_KEY)
    for index, prediction_id in enumerate(ids):
        session = {"userArn": f"arn:aws:sts::123456789012:assumed-role/labeller/flood-{index}"}
        reply = api.feedback({"prediction_id": prediction_id, "label": "1"}, identity=session)
        assert reply.status == 202, reply.body

    written = [json.loads(line)["caller"] for line in to_json_lines(feedback_sink.feedback).splitlines()]
    assert {caller["principal"] for caller in written} == {"arn:aws:iam::123456789012:role/labeller"}
    assert len({caller["session"] for caller in written}) == 1000
