import pytest

from r3hf_server.errors import InvalidInputError
from r3hf_server.runner.base import EncodedItem
from r3hf_server.runner.spans import fit_to_length, offsets_in_response, response_token_range


def test_a_token_straddling_the_boundary_belongs_to_the_response():
    # "Hello" + " world": tokens "Hel", "lo wor", "ld" with a BOS
    offsets = [(0, 0), (0, 3), (3, 8), (8, 11)]
    assert response_token_range(offsets, 5, 11, leading_specials=1) == (2, 4)


def test_an_added_eos_is_a_suffix_not_a_response_token():
    offsets = [(0, 0), (0, 2), (2, 4), (0, 0)]
    assert response_token_range(offsets, 2, 4, leading_specials=1) == (2, 3)


def test_empty_response_sits_after_the_last_prompt_token_even_with_an_eos():
    assert response_token_range([(0, 0), (0, 2), (2, 4), (0, 0)], 4, 4, leading_specials=1) == (3, 3)
    assert response_token_range([(0, 0), (0, 0)], 0, 0, leading_specials=1) == (1, 1)
    assert response_token_range([], 0, 0, leading_specials=0) == (0, 0)


def test_offsets_are_clamped_into_the_response():
    assert offsets_in_response([(3, 8), (8, 11)], 5, 11) == ((0, 3), (3, 6))
    assert offsets_in_response([(10, 14)], 5, 11) == ((5, 6),)


def _item(n: int, p: int, q: int) -> EncodedItem:
    return EncodedItem(input_ids=tuple(range(n)), response_start=p, response_end=q)


def test_fit_to_length_keeps_an_item_that_fits():
    item = _item(10, 4, 9)
    assert fit_to_length(item, 10, "error", keep_leading=1) is item


def test_over_length_is_rejected_with_the_length_and_limit():
    with pytest.raises(InvalidInputError, match="12 tokens exceed the model's limit of 10"):
        fit_to_length(_item(12, 6, 11), 10, "error", keep_leading=1)


def test_left_truncation_drops_the_prompt_start_but_keeps_the_bos_and_the_response():
    out = fit_to_length(_item(12, 6, 11), 10, "left", keep_leading=1)
    assert out.input_ids == (0, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert (out.response_start, out.response_end, out.truncated) == (4, 9, True)


def test_a_response_that_alone_exceeds_the_limit_is_always_an_error():
    for mode in ("error", "left"):
        with pytest.raises(InvalidInputError, match="the response alone needs"):
            fit_to_length(_item(12, 2, 11), 10, mode, keep_leading=1)
