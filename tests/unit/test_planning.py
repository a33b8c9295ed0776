from r3hf_server.runner.base import EncodedItem
from r3hf_server.runner.planning import BatchPolicy, batching_order, plan_batch

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
