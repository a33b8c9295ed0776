"""Thin client for the R3HF token-reward server. Importing it never imports torch, transformers or FastAPI.

``RewardClient`` / ``AsyncRewardClient`` call the server (chunking, retries, replica routing and failover,
fingerprint pinning);
``r3hf_client.projection`` maps per-token rewards onto a policy with another tokenizer; ``r3hf_client.adapters``
plugs the server into RLHF trainers (OpenRLHF, TRL, verl, AReaL) and builds dense tensors for custom loops.
"""

from .async_client import AsyncRewardClient
from .client import RewardClient
from .errors import (
    AllReplicasDownError, APIError, ConnectionFailedError, DeadlineExceededError, ErrorType, FingerprintMismatchError,
    R3HFError,
)
from .projection import PolicyTokenRewards
from .retry import RetryPolicy
from .routing import HealthPolicy

__all__ = [
    "AllReplicasDownError", "APIError", "AsyncRewardClient", "ConnectionFailedError", "DeadlineExceededError",
    "ErrorType", "FingerprintMismatchError", "HealthPolicy", "PolicyTokenRewards", "R3HFError", "RetryPolicy",
    "RewardClient",
]
__version__ = "0.1.0"
