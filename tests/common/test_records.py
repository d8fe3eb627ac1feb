"""Prediction ids and the capture / feedback records: the contract the API writes and the monitor and workflow read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from functions.common.records import (
    Caller,
    FeedbackRecord,
    FixedKeys,
    IdKey,
    InvalidPredictionId,
    PredictionRecord,
    new_prediction_ids,
    parse_json_lines,
    prediction_time,
    to_json_lines,
)

KEY = IdKey(b"k" * 32)
KEYS = FixedKeys(KEY)


def forged(time_digits: str, random_digits: str = "0123456789ab") -> str:
    """An id over any 24 characters, as only a holder of the key can mint it."""
    return KEY.sign(time_digits + random_digits)


def test_an_issued_id_gives_back_its_serving_time_to_the_millisecond() -> None:
    now = datetime(2026, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)
    [prediction_id] = new_prediction_ids(1, now, KEY)
    assert prediction_time(prediction_id, KEYS) == now


def test_the_last_millisecond_of_year_9999_is_a_valid_time() -> None:
    last = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    millis = (last - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert prediction_time(forged(f"{millis:012x}"), KEYS) == last


@pytest.mark.parametrize("time_digits", ["e677d21fdc00", "ffffffffffff"])
def test_an_id_whose_time_is_past_year_9999_is_refused_as_invalid(time_digits: str) -> None:
    with pytest.raises(InvalidPredictionId, match="past year 9999"):
        prediction_time(forged(time_digits), KEYS)


def test_an_id_verifies_under_any_key_that_holds_its_tag_and_under_no_other() -> None:
    previous = IdKey(b"p" * 32)
    [old] = new_prediction_ids(1, datetime.now(UTC), previous)
    [new] = new_prediction_ids(1, datetime.now(UTC), KEY)

    assert prediction_time(old, FixedKeys(KEY, previous)) and prediction_time(new, FixedKeys(KEY, previous))
    with pytest.raises(InvalidPredictionId, match="no current key has its key tag"):
        prediction_time(old, KEYS)


def test_a_key_shorter_than_256_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes, got 31"):
        IdKey(b"k" * 31)


@pytest.mark.parametrize(
    "prediction_id",
    [
        pytest.param(forged("019000000000").upper(), id="uppercase"),
        pytest.param(forged("0x0190000000"), id="0x prefix"),
        pytest.param(forged("0190_0000000"), id="underscore"),
        pytest.param(forged(" 01900000000"), id="space"),
        pytest.param(forged("+01900000000"), id="plus sign"),
    ],
)
def test_only_lowercase_hex_digits_make_an_id_even_where_int_would_parse_it(prediction_id: str) -> None:
    with pytest.raises(InvalidPredictionId, match="lowercase hex digits only"):
        prediction_time(prediction_id, KEYS)


def test_records_round_trip_through_json_lines_with_their_caller() -> None:
    caller = Caller(principal="arn:aws:iam::123456789012:user/labeller", api_key_id="k1x2", source_ip="203.0.113.7")
    prediction = PredictionRecord(
        "a" * 32, "2026-01-01T00:00:00.000+00:00", "v1", {"age": 3}, label="1", request_id="r1", caller=caller
    )
    feedback = FeedbackRecord("a" * 32, "2026-01-02T00:00:00.000+00:00", label="0", caller=caller)

    first, second = parse_json_lines(to_json_lines([prediction, feedback]))

    assert first["caller"] == {
        "principal": caller.principal,
        "api_key_id": "k1x2",
        "source_ip": "203.0.113.7",
        "session": None,
    }
    assert PredictionRecord.from_dict(first) == prediction
    assert FeedbackRecord.from_dict(second) == feedback


def test_records_written_before_callers_were_recorded_still_read_with_no_caller() -> None:
    old = {"prediction_id": "b" * 32, "time": "2025-06-01T00:00:00.000+00:00", "label": "1", "value": None}
    assert FeedbackRecord.from_dict(old).caller is None
    assert FeedbackRecord.from_dict(old | {"caller": None}).caller is None
    capture = {"prediction_id": "b" * 32, "time": old["time"], "model_version": "v1", "features": {"age": 3}}
    assert PredictionRecord.from_dict(capture).caller is None


def test_a_caller_with_parts_unknown_or_unexpected_keys_reads_what_it_knows() -> None:
    record = FeedbackRecord.from_dict(
        {"prediction_id": "c" * 32, "time": "t", "caller": {"source_ip": "198.51.100.4", "user_agent": "curl"}}
    )
    assert record.caller == Caller(source_ip="198.51.100.4")


def test_a_caller_that_is_not_an_object_is_a_malformed_record() -> None:
    # Readers count a record whose from_dict raises TypeError as malformed and go on.
    with pytest.raises(TypeError, match="a caller is an object"):
        FeedbackRecord.from_dict({"prediction_id": "c" * 32, "time": "t", "caller": "alice"})


def test_a_record_without_a_caller_is_written_with_a_null_caller() -> None:
    record = FeedbackRecord("d" * 32, "2026-01-02T00:00:00.000+00:00", label="1")
    assert json.loads(to_json_lines([record]))["caller"] is None


def test_a_callers_identity_is_its_strongest_known_part() -> None:
    assert Caller("arn:aws:iam::1:user/a", "key-1", "192.0.2.1").identity == "principal:arn:aws:iam::1:user/a"
    assert Caller(None, "key-1", "192.0.2.1").identity == "api_key_id:key-1"
    assert Caller(source_ip="192.0.2.1").identity == "source_ip:192.0.2.1"
    assert Caller().identity == ""


@pytest.mark.parametrize(
    ("principal", "role", "session"),
    [
        pytest.param(
            "arn:aws:sts::123456789012:assumed-role/labeller/session-1",
            "arn:aws:iam::123456789012:role/labeller",
            "session-1",
            id="the session's ARN",
        ),
        pytest.param(
            "arn:aws-us-gov:sts::123456789012:assumed-role/teams/ml/labeller/jane@example.com",
            "arn:aws-us-gov:iam::123456789012:role/teams/ml/labeller",
            "jane@example.com",
            id="a role path and another partition",
        ),
        pytest.param("AROAEXAMPLEID:session-1", "AROAEXAMPLEID", "session-1", id="the session's principal id"),
    ],
)
def test_a_session_of_an_assumed_role_is_recorded_as_its_role_with_the_session_name_apart(
    principal: str, role: str, session: str
) -> None:
    caller = Caller(principal=principal, source_ip="203.0.113.7")

    assert (caller.principal, caller.session) == (role, session)
    assert caller.identity == f"principal:{role}"
    record = FeedbackRecord("a" * 32, "t", label="1", caller=caller)
    assert FeedbackRecord.from_dict(json.loads(to_json_lines([record]))) == record


@pytest.mark.parametrize(
    "principal",
    [
        "arn:aws:iam::123456789012:user/labeller",
        "arn:aws:iam::123456789012:role/labeller",
        "arn:aws:sts::123456789012:federated-user/labeller",
        "arn:aws:iam::123456789012:root",
        "AIDAEXAMPLEID",
    ],
)
def test_a_principal_that_is_not_a_role_session_is_recorded_as_given(principal: str) -> None:
    assert (Caller(principal).principal, Caller(principal).session) == (principal, None)


def test_a_thousand_session_names_of_one_role_are_one_caller() -> None:
    callers = {
        Caller(principal=f"arn:aws:sts::123456789012:assumed-role/labeller/flood-{index}").identity
        for index in range(1000)
    }

    assert callers == {"principal:arn:aws:iam::123456789012:role/labeller"}
