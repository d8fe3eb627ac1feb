"""The join's SQL rules shared by the monitor and Assemble: the capture hours an id prefix names, the age limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.common.labelled_sql import PREFIX_DIGITS, FeedbackWindow, capture_hours, oldest_id_time
from functions.common.layout import ARRIVAL_SLACK, hour_value
from functions.common.records import TIME_DIGITS, new_prediction_ids, prediction_time
from functions.inference.id_keys import LOCAL_KEYS
from tests.prediction_ids import ID_KEY

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
MONTH = timedelta(days=30)
WINDOW = FeedbackWindow(NOW - MONTH, NOW, MONTH)


def test_capture_hours_cover_each_prefixs_span_and_the_arrival_slack() -> None:
    served = datetime(2026, 3, 1, 10, 58, tzinfo=UTC)
    [prediction] = new_prediction_ids(1, served, ID_KEY)
    prefix = prediction[:PREFIX_DIGITS]
    # The 7 leading hex digits of the 12-digit ms time: a span of 16**5 ms that holds the serving time.
    span = timedelta(milliseconds=16 ** (TIME_DIGITS - PREFIX_DIGITS))
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(prefix, 16) * span.total_seconds() * 1000)
    assert start <= prediction_time(prediction, LOCAL_KEYS) < start + span

    hours = capture_hours([prefix], WINDOW)

    assert hours[0] == hour_value(start) and hour_value(served + ARRIVAL_SLACK) in hours and len(hours) <= 3


def test_capture_hours_name_nothing_outside_the_window_so_a_made_up_id_cannot_widen_the_read() -> None:
    assert capture_hours([new_prediction_ids(1, NOW - 2 * MONTH, ID_KEY)[0][:PREFIX_DIGITS]], WINDOW) == []
    assert capture_hours([new_prediction_ids(1, NOW + timedelta(days=1), ID_KEY)[0][:PREFIX_DIGITS]], WINDOW) == []
    assert capture_hours(["fffffff"], WINDOW) == []


def test_the_feedback_age_limit_is_exact_to_the_millisecond() -> None:
    limit = datetime(2026, 11, 27, 12, 0, 0, 500, tzinfo=UTC) - MONTH
    oldest = oldest_id_time(limit)
    [at_limit] = new_prediction_ids(1, limit + timedelta(microseconds=500), ID_KEY)
    [just_before] = new_prediction_ids(1, limit - timedelta(microseconds=400), ID_KEY)
    assert at_limit[:TIME_DIGITS] >= oldest
    assert just_before[:TIME_DIGITS] < oldest
