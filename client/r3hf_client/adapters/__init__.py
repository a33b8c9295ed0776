"""Drop-in reward functions for RLHF trainers. Import the module for your trainer; none is imported here.

- ``openrlhf``: ``reward_func`` for OpenRLHF's python-file mode (the server also speaks ``POST /get_reward``).
- ``trl``: ``make_reward_func`` / ``make_async_reward_func`` for GRPOTrainer / RLOOTrainer ``reward_funcs``.
- ``verl``: ``compute_score`` (sequence score) and ``R3HFRewardManager`` (dense per-token rewards).
- ``areal``: ``reward_fn`` for AReaL.
- ``dense``: right-padded reward tensor and mask for custom PPO loops.
- ``protocols``: the OpenRLHF and slime request/response shapes, shared with the server.

Module-level functions read their server from the environment (``settings.ClientSettings``), because trainers
load them by path and call them in worker processes.
"""
