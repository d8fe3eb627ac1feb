"""The body's repeated-key check: whatever the text, a quick count never rules out a repeat that is there."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.inference.body import decode
from functions.inference.errors import ValidationFailed

# Few key names, so that objects repeat them; strings with colons, raw or escaped, to mislead the count.
KEYS = st.sampled_from(["a", "b", "a:b", "instances"])
STRINGS = st.text(alphabet="x:", max_size=3).map(json.dumps) | st.just('"\\u003a"') | st.just('"\\u003A:"')
SCALARS = STRINGS | st.integers(-5, 5).map(str) | st.just("null")


def objects(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    members = st.lists(st.tuples(KEYS.map(json.dumps), children), max_size=4)
    return members.map(lambda pairs: "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}")


def arrays(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(children, max_size=3).map(lambda items: "[" + ",".join(items) + "]")


TEXTS = objects(st.recursive(SCALARS, lambda children: objects(children) | arrays(children), max_leaves=12))


def repeats_a_key(text: str) -> bool:
    found = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or len({key for key, _ in pairs}) < len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=pairs_hook)
    return found


@given(text=TEXTS)
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
def test_a_body_is_refused_for_a_repeated_key_exactly_when_it_repeats_one(text: str) -> None:
    try:
        decode(text.encode(), print, "instances")
    except ValidationFailed as exc:
        assert repeats_a_key(text), exc.details
        assert all(problem.problem.startswith("repeated key") for problem in exc.details)
    else:
        assert not repeats_a_key(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"instances": [{"age": 1, "age": "\\u003a"}]}',
        '{"instances": [{"age": {"x": 1, "x": "\\u003A"}}]}',
    ],
)
def test_a_repeated_key_is_found_even_where_an_escaped_colon_would_balance_the_count(text: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode(text.encode(), print, "instances")

    assert [problem.problem[:12] for problem in raised.value.details] == ["repeated key"]


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_repeated_key_nested_deeper_than_orjson_writes_is_still_found(depth: int) -> None:
    text = '{"a":' * depth + '{"x": 1, "x": 2}' + "}" * depth

    with pytest.raises(ValidationFailed) as raised:
        decode(text.encode(), print, "instances")

    assert [problem.field for problem in raised.value.details] == ["x"]
