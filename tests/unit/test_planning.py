from r3hf_server.runner.base import EncodedItem
from r3hf_server.runner.planning import BatchPolicy, batch_cost, batching_order, plan_batch

SHARE = BatchPolicy(share_prompts=True, min_shared_prompt_tokens=3)


def item(prompt, rest):
    ids = tuple(prompt) + tuple(rest)
    return EncodedItem(input_ids=ids, response_start=len(prompt), response_end=len(ids))


P = (1, 2, 3, 4)


def test_items_with_the_same_prompt_form_a_group_and_the_rest_run_alone():
    items = [item(P, [5]), item((9, 9, 9), [5, 6]), item(P, [7, 8]), item((1, 2), [3]), item(P, [])]
    plan = plan_batch(items, SHARE)
    assert plan.groups == [(P, [0, 2])]
    assert plan.singles == [1, 3, 4]  # unique prompt, prompt too short, nothing after the prompt


def test_no_groups_when_reuse_is_off():
    items = [item(P, [5]), item(P, [6])]
    assert plan_batch(items, BatchPolicy()).groups == []


def test_cost_counts_a_shared_prompt_once():
    meter = SHARE.meter()
    for rest in ([5, 6], [7], [8, 9, 10]):
        meter.add(item(P, rest))
    assert meter.cost == len(P) + 3 * 3
    plain = BatchPolicy().meter()
    for rest in ([5, 6], [7], [8, 9, 10]):
        plain.add(item(P, rest))
    assert plain.cost == 3 * (len(P) + 3)


def test_cost_with_predicts_add():
    for policy in (SHARE, BatchPolicy(), BatchPolicy(packed=True)):
        meter = policy.meter()
        for it in [item(P, [5]), item((7, 7, 7, 7, 7), [1, 2]), item(P, [1, 2, 3]), item((8,), [1])]:
            predicted = meter.cost_with(it)
            meter.add(it)
            assert meter.cost == predicted


def test_batching_order_keeps_groups_together_and_sorts_by_length():
    items = [item(P, [5] * 10), item((9, 9, 9), [1]), item(P, [5]), item((8, 8, 8), [1] * 20)]
    order = batching_order(items, SHARE)
    assert order == [1, 2, 0, 3]


def test_cost_with_predicts_add_on_every_path():
    attended = EncodedItem(input_ids=(1, 2, 3, 4, 5), response_start=4, response_end=5, needs_attention=True)
    policies = (
        SHARE, BatchPolicy(), BatchPolicy(packed=True), BatchPolicy(equal_lengths_only=True),
        BatchPolicy(share_prompts=True, min_shared_prompt_tokens=3, equal_lengths_only=True),
    )
    for policy in policies:
        meter = policy.meter()
        for it in [item(P, [5]), attended, item((7, 7, 7, 7, 7), [1, 2]), item(P, [1, 2, 3]), item((8,), [1])]:
            predicted = meter.cost_with(it)
            meter.add(it)
            assert meter.cost == predicted, policy


# The batch below, by path: lengths 5 (P+1), 7 (P+3), 6 (unique prompt of 4 + 2), 3 (short prompt), and one item
# needing attention (length 5). "Real" tokens: 5 + 7 + 6 + 3 + 5 = 26.
BATCH = [item(P, [5]), item(P, [5, 6, 7]), item((9, 9, 9, 9), [1, 2]), item((1, 2), [3]),
         EncodedItem(input_ids=(1, 2, 3, 4, 5), response_start=4, response_end=5, needs_attention=True)]


def test_batch_cost_is_padding_included_on_the_gpu_default():
    # right-padded rows 5, 7, 6, 3 -> 4 x 7; the attention item alone, unpadded
    assert batch_cost(BATCH, BatchPolicy()) == 4 * 7 + 5


def test_batch_cost_has_no_padding_on_the_cpu_default():
    # equal lengths only: every row holds its own tokens
    assert batch_cost(BATCH, BatchPolicy(equal_lengths_only=True)) == 5 + 7 + 6 + 3 + 5


def test_batch_cost_counts_a_reused_prompt_once():
    # group P: prompt 4 once + 2 responses padded to 3; rows 6 and 3 padded to 6; attention item alone
    assert batch_cost(BATCH, SHARE) == (4 + 2 * 3) + 2 * 6 + 5
    # CPU with reuse: the group's responses unpadded (1 + 3), rows unpadded
    cpu = BatchPolicy(share_prompts=True, min_shared_prompt_tokens=3, equal_lengths_only=True)
    assert batch_cost(BATCH, cpu) == (4 + 1 + 3) + 6 + 3 + 5


def test_a_prompt_seen_once_costs_as_an_ordinary_row():
    lone = [item(P, [5, 6]), item((9, 9), [1, 2, 3, 4, 5, 6, 7])]
    assert batch_cost(lone, SHARE) == 2 * 9 == batch_cost(lone, BatchPolicy())


def test_the_plan_puts_attention_items_alone():
    plan = plan_batch(BATCH, SHARE)
    assert plan.alone == [4] and plan.groups == [(P, [0, 1])] and plan.singles == [2, 3]
