import pytest

from functions.common.text_values import list_text, text_list


def test_a_json_list_keeps_each_text_exactly_with_its_spaces_and_commas() -> None:
    assert text_list('["Price, USD", " ?", "Weight"]') == ("Price, USD", " ?", "Weight")


def test_the_comma_form_is_split_and_stripped_as_before() -> None:
    assert text_list(" ?, n/a,,-") == ("?", "n/a", "-")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('["Price, USD"', "starts with '[' but is not a JSON list: Expecting ',' delimiter"),
        ('[" ?", 1]', "starts with '[' but is not a JSON list of non-empty strings"),
        ('[""]', "starts with '[' but is not a JSON list of non-empty strings"),
        ('["a", "a"]', "lists a more than once"),
    ],
)
def test_a_malformed_json_list_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[")):
        text_list(text)


@pytest.mark.parametrize("items", [("a", "b"), ("Price, USD", "Weight"), (" ?",), ("[x]",), ()])
def test_a_list_written_as_text_reads_back_the_same(items: tuple[str, ...]) -> None:
    assert text_list(list_text(items)) == items


def test_a_plain_list_is_written_comma_separated() -> None:
    assert list_text(("?", "unknown")) == "?,unknown"
