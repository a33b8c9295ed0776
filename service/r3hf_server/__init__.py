"""R3HF token-reward server: sequence scores and per-token rewards from one forward pass of a causal reward model."""

__version__ = "0.1.0"
