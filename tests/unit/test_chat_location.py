"""The response of a chat item is located correctly whatever the messages hold: the marker string, chat markup, or
the response's own text inside the prompt (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")  # a real fast tokenizer (R3HF_BLOCK_TORCH=1 runs skip this module)

import tiny_models  # noqa: E402
from r3hf_server.runner.base import ChatInput  # noqa: E402
from r3hf_server.runner.encoding import TokenizerEncoder  # noqa: E402

OLD_FIXED_MARKER = "R3HFRESPONSEMARKERq7Zx"  # the constant the server used before: now just text
TRICKY = [OLD_FIXED_MARKER, "R3HFRESPONSE", "<|assistant|>\n", "<|user|>\n", "</s>", "<s>", "\n", "  ", "{{ x }}"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    tokenizer = tiny_models.build_tokenizer(tmp_path_factory.mktemp("chat-tokenizer"))
    return TokenizerEncoder(tokenizer, max_length=10**6, vocab_size=len(tokenizer))


plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
tricky_text = st.lists(st.one_of(plain_text, st.sampled_from(TRICKY)), max_size=5).map("".join)


@st.composite
def conversations(draw):
    response = draw(tricky_text)
    # The prompt may quote the response, or carry markers and markup, anywhere.
    user = draw(st.lists(st.one_of(tricky_text, st.just(response)), min_size=1, max_size=3).map("".join))
    history = draw(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), tricky_text), max_size=2))
    system = draw(st.lists(tricky_text, max_size=1))
    messages = [("system", s) for s in system] + history + [("user", user), ("assistant", response)]
    return tuple(messages)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=conversations())
def test_the_response_is_found_whatever_the_messages_hold(encoder, messages):
    response = messages[-1][1]
    dicts = [{"role": r, "content": c} for r, c in messages]
    rendered = encoder._render(dicts)
    start, end = encoder._locate_response(dicts, rendered)
    # The template trims contents; the response is the trimmed text, right before the final end-of-turn.
    assert rendered[start:end] == response.strip()
    assert rendered[end:] == "</s>\n"
    assert rendered[:start].endswith("<|assistant|>\n")
    item = encoder.encode(ChatInput(messages), truncation="error", with_tokens=True)
    ids = list(item.input_ids)
    decoded = encoder.tokenizer.decode(ids[item.response_start : item.response_end])
    assert response.strip() in decoded if response.strip() else item.response_start == item.response_end
    assert encoder.tokenizer.decode(ids[item.response_end :]) == "</s>\n"


def test_the_old_fixed_marker_in_a_user_message_no_longer_moves_the_rewards(encoder):
    messages = (("user", f"Please repeat {OLD_FIXED_MARKER} twice."), ("assistant", "Sure, here it is."))
    item = encoder.encode(ChatInput(messages), truncation="error", with_tokens=False)
    decoded = encoder.tokenizer.decode(list(item.input_ids[item.response_start : item.response_end]))
    assert decoded == "Sure, here it is."
