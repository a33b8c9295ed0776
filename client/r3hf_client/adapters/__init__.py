"""Drop-in reward functions for RLHF trainers. Import the module for your trainer; none is imported here.

- ``openrlhf``: ``reward_func`` for OpenRLHF's python-file mode (the server also speaks ``POST /get_reward``).
- ``trl``: ``make_reward_func`` / ``make_async_reward_func`` for GRPOTrainer / RLOOTrainer ``reward_funcs``, and
  ``R3HFDenseGRPOTrainer`` + ``R3HFDenseReward`` for per-token advantages (``trl_dense``; trl imported lazily).
- ``verl``: ``compute_score`` (sequence score); ``verl_dense``: ``R3HFRewardManager`` (dense per-token rewards,
  verl's reward loop ≥ 0.8 and the legacy path ≤ 0.7).
- ``areal``: ``reward_fn`` for AReaL.
- ``dense``: right-padded reward tensor and mask for custom PPO loops.
- ``protocols``: the OpenRLHF and slime request/response shapes, shared with the server.

Module-level functions read their server from the environment (``settings.ClientSettings``), because trainers
load them by path and call them in worker processes. Trainers load these files standalone
(``spec_from_file_location``), so every module here imports only absolute names.
"""
