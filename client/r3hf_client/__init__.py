"""Thin client for the R3HF token-reward server. Importing it never imports torch, transformers or FastAPI."""

from .client import RewardClient
from .errors import APIError, ErrorType, R3HFError

__all__ = ["APIError", "ErrorType", "R3HFError", "RewardClient"]
__version__ = "0.1.0"
