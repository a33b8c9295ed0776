"""Policy byte spans from sampled ids, and the end-aligned sum-conserving projection, across two unlike tokenizers."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_tokenizers import byte_level_bpe, metaspace_byte_fallback_bpe
from r3hf_client import token_bytes
from r3hf_client.projection import (
    PolicyJob, char_to_byte_spans, owners_of, project_result, project_rewards,
)
from r3hf_client.token_bytes import align_pieces, policy_byte_spans
from r3hf_client.wire import TokenRewardResult

TOKENIZERS = {"byte_level": byte_level_bpe(), "metaspace": metaspace_byte_fallback_bpe()}
# ASCII, Latin-1, CJK, emoji (4 bytes), combining marks and newlines: every UTF-8 length, and splits inside chars.
TEXT = st.text(alphabet=st.sampled_from(list("ab cdefxyz.,!\n\té日本語😀🎉\u0301ü")), max_size=40)
REWARD = st.floats(min_value=-100, max_value=100, allow_nan=False)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def result(rewards, offsets, **overrides) -> TokenRewardResult:
    fields = dict(index=0, score=math.fsum(rewards) + 1.0, prompt_score=1.0, num_response_tokens=len(rewards),
                  truncated=False, template_changed_response=False, token_rewards=list(rewards), offsets=offsets)
    return TokenRewardResult(**{**fields, **overrides})


def tiles(spans, size: int) -> bool:
    """Consecutive spans from byte 0 to the last byte (zero-width spans allowed)."""
    if not spans:
        return size == 0
    return spans[0][0] == 0 and spans[-1][1] == size and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("name", TOKENIZERS)
@PROPERTY
@given(text=TEXT)
def test_spans_of_canonical_ids_tile_the_response_and_spell_each_token(name, text):
    tok = TOKENIZERS[name]
    ids = tok.encode(text).ids
    response = tok.decode(ids)
    spans = policy_byte_spans(response, ids, tok)
    assert spans is not None and len(spans) == len(ids)
    assert tiles(spans, len(response.encode()))


@pytest.mark.parametrize("name", TOKENIZERS)
@PROPERTY
@given(data=st.data())
def test_spans_of_sampled_ids_come_from_the_ids_never_from_re_encoding(name, data):
    """A sampled sequence is usually not the canonical tokenization of its text; its spans still tile the text."""
    tok = TOKENIZERS[name]
    ids = data.draw(st.lists(st.integers(min_value=3, max_value=tok.get_vocab_size() - 1), max_size=20))
    response = tok.decode(ids)
    spans = policy_byte_spans(response, ids, tok)
    if "\ufffd" in response:  # the ids spell invalid UTF-8: no alignment is the honest answer
        return
    assert spans is not None and len(spans) == len(ids)
    raw = response.encode()
    assert b"".join(raw[s:e] for s, e in spans) == raw


@pytest.mark.parametrize(("rm_name", "policy_name"), [("byte_level", "metaspace"), ("metaspace", "byte_level")])
@PROPERTY
@given(text=TEXT, data=st.data())
def test_projection_conserves_the_sum_and_accounts_for_every_token(rm_name, policy_name, text, data):
    rm, policy = TOKENIZERS[rm_name], TOKENIZERS[policy_name]
    rm_offsets = rm.encode(text).offsets
    rewards = data.draw(st.lists(REWARD, min_size=len(rm_offsets), max_size=len(rm_offsets)))
    policy_ids = policy.encode(text).ids + [policy.token_to_id("</s>")]  # a sampled EOS ends the response
    projected = project_result(result(rewards, rm_offsets), text, policy_byte_spans(text, policy_ids, policy),
                               len(policy_ids))
    assert projected.aligned or not policy_ids
    assert len(projected.token_rewards) == len(policy_ids)
    tolerance = 1e-12 * (1.0 + math.fsum(abs(r) for r in rewards))
    assert abs(math.fsum(projected.token_rewards) - math.fsum(rewards)) <= tolerance
    assert abs(projected.sum_error) <= tolerance
    owners = owners_of([e for _, e in char_to_byte_spans(text, rm_offsets)],
                       [e for _, e in policy_byte_spans(text, policy_ids, policy)], len(text.encode()))
    assert len(owners) == len(rewards) and owners == sorted(owners)  # each RM token to exactly one, in order
    if rewards:
        assert owners[-1] == len(policy_ids) - 1  # the end of the response lands on the last policy token (EOS)


def test_each_rm_token_goes_to_the_policy_token_emitting_its_last_byte():
    response = "ab😀c"  # bytes: a=0, b=1, 😀=2..6, c=6
    rm_spans = char_to_byte_spans(response, [(0, 2), (2, 3), (2, 3), (3, 4)])  # the RM splits the emoji in two
    assert rm_spans == [(0, 2), (2, 6), (2, 6), (6, 7)]
    policy = [(0, 1), (1, 4), (4, 6), (6, 7), (7, 7)]  # the policy splits it elsewhere, then samples an EOS
    assert project_rewards([1.0, 10.0, 100.0, 1000.0], rm_spans, policy, 7) == [0.0, 1.0, 110.0, 0.0, 1000.0]


def test_unavailable_alignment_keeps_the_sum_on_the_last_token_and_says_why():
    res = result([0.5, 0.25], [(0, 1), (1, 2)])
    out = project_result(res, "ab", None, 3)
    assert (out.aligned, out.token_rewards, out.mapped_fraction) == (False, [0.0, 0.0, 0.75], 0.0)
    assert "do not spell" in out.reason
    changed = project_result(result([1.0], [(0, 1)], template_changed_response=True), "a", [(0, 1)], 1)
    assert not changed.aligned and "template" in changed.reason and changed.token_rewards == [1.0]
    ids_form = project_result(result([1.0], None), "a", [(0, 1)], 1)
    assert not ids_form.aligned and "offsets" in ids_form.reason


def test_mapped_fraction_reports_response_bytes_the_rm_did_not_cover():
    out = project_result(result([1.0, 2.0], [(0, 1), (1, 2)]), "abcd", [(0, 2), (2, 4)], 2)
    assert out.aligned and out.mapped_fraction == 0.5
    assert out.token_rewards == [1.0, 2.0]  # the last RM token carries the suffix: always the last policy token


def test_hf_fast_tokenizers_special_tokens_take_no_bytes_unless_the_text_has_them():
    PreTrainedTokenizerFast = pytest.importorskip("transformers").PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=TOKENIZERS["metaspace"], unk_token="<unk>", bos_token="<s>",
                                 eos_token="</s>")
    ids = hf("wonderful 日本", add_special_tokens=False)["input_ids"] + [hf.eos_token_id]
    plain = hf.decode(ids, skip_special_tokens=True)
    assert policy_byte_spans(plain, ids, hf)[-1] == (len(plain.encode()),) * 2
    kept = hf.decode(ids, skip_special_tokens=False)
    assert kept.endswith("</s>") and policy_byte_spans(kept, ids, hf)[-1][1] == len(kept.encode())


def test_generic_tokenizers_use_incremental_decoding_holding_back_partial_characters(monkeypatch):
    tok = TOKENIZERS["byte_level"]
    monkeypatch.setattr(token_bytes, "decoder_kind", lambda _: "generic")
    ids = tok.encode("a😀b").ids
    pieces, _ = token_bytes.token_pieces(ids, tok)
    assert b"".join(pieces) == "a😀b".encode() and b"" in pieces  # an emoji's first byte tokens emit nothing yet
    assert policy_byte_spans("a😀b", ids, tok) is not None


def test_alignment_drops_only_a_leading_space_and_rejects_other_text():
    assert align_pieces(b"hi", [b" h", b"i"], [False, False]) == [(0, 1), (1, 2)]
    assert align_pieces(b"hi", [b"h", b" i"], [False, False]) is None
    assert align_pieces(b"hi", [b"h"], [False]) is None  # the pieces must spell the whole response


def test_policy_jobs_check_their_inputs():
    with pytest.raises(ValueError, match="policy_spans, or policy_ids"):
        PolicyJob.build(["p"], ["r"], None, None, None)
    with pytest.raises(ValueError, match="in order"):
        PolicyJob.build(["p"], ["ab"], None, None, [[(0, 2), (0, 1)]])
    job = PolicyJob.build(["p"], ["ab"], None, None, [[(0, 1), (1, 2)]])
    assert job.items == [{"prompt": "p", "response": "ab"}] and job.counts == [2]
