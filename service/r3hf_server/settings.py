"""One settings object: every field is a ``--flag`` of ``r3hf serve`` and an ``R3HF_<NAME>`` environment variable.

Built at start-up (``Settings(**flags)`` in ``cli.serve``, or ``Settings()`` from the environment), never at import;
passed down explicitly. A runner gets only ``ModelLoadSettings``: the fields that say how to load and run the model,
no API keys and no HTTP limits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="R3HF_", extra="forbid", protected_namespaces=())

    model: str = Field(
        str(DEMO_MODEL_DIR),
        description="Reward model: a local path or a hub id (*ForSequenceClassification). Default: the embedded demo RM.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of --model.")
    tokenizer: str | None = Field(None, description="Tokenizer path or hub id, if not the model's own.")
    served_model_name: str | None = Field(None, description="Name reported in responses (default: --model).")
    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = bfloat16 on CUDA, float32 on CPU (bfloat16 on CPU is opt-in)."
    )
    device: str = Field("auto", description="auto = cuda if available else cpu; or cpu, cuda, cuda:1, ...")
    trust_remote_code: bool = Field(False, description="Allow model code from the checkpoint (off by default).")
    head_name: str | None = Field(
        None,
        description="Checkpoint name of the score head when it is not the architecture's own (e.g. OpenRLHF's "
        "value_head); its weights are loaded into the head instead of being initialised at random.",
    )
    backbone_module: str | None = Field(
        None,
        description="Dotted attribute path of the module giving the last hidden states (e.g. model), for a custom-code "
        "reward model (--trust-remote-code). Default: the architecture's base model.",
    )
    head_module: str | None = Field(
        None,
        description="Dotted attribute path of the score head applied to every position's hidden state (e.g. v_head, "
        "reward_head.mlp). Default: the architecture's score head (score, classifier, value_head or v_head).",
    )
    prefix_stride: int = Field(
        1, ge=1,
        description="Encoder reward models (prefix expansion): score every K-th response prefix plus the last, and "
        "spread each stride's score change evenly over its K tokens. 1 = every prefix (exact).",
    )
    label_index: int | None = Field(
        None, ge=0, description="Which score-head output is the reward; required when the model has num_labels > 1."
    )
    max_length: int | None = Field(
        None, ge=2, description="Cap on tokens per item (default: the smaller of the tokenizer's and model's limits)."
    )
    max_batch_tokens: int = Field(16384, ge=1, description="Token budget of one forward batch (longest x count).")
    max_batch_size: int = Field(64, ge=1, description="Most items in one forward batch.")
    max_wait_ms: float = Field(2.0, ge=0, description="How long the batcher waits for more items to fill a batch.")
    max_items_per_request: int = Field(4096, ge=1, description="Most items one request may carry (413 beyond).")
    max_queue_items: int = Field(
        8192, ge=1,
        description="Most items admitted at once (tokenizing, queued or in a forward); a request that would pass "
        "it gets 429 with Retry-After. Bounds the server's memory under any burst.",
    )
    max_item_chars: int | None = Field(
        None, ge=1,
        description="Most characters in one item (prompt + response, or all messages), checked before tokenizing "
        "(422 beyond). Default: 32 x the token limit.",
    )
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest request body, counted while it streams in (413 beyond)."
    )
    max_inflight_body_bytes: int = Field(
        128 * 1024 * 1024, ge=1,
        description="Most bytes of request bodies held at once (being read, parsed, or held by a request in "
        "progress), each counted at its parsed size once decoded (+640 per chat message, +56 per token id); a "
        "request that would pass it gets 429 with Retry-After, one that could never fit gets 413.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0,
        description="A request body must keep arriving: a pause longer than this, or an average pace under "
        "--min-body-bytes-per-s once this long has passed, gets 408 and the connection is closed.",
    )
    min_body_bytes_per_s: float = Field(
        16384.0, ge=0, description="Slowest average upload pace accepted after --body-timeout-s (408 below it)."
    )
    header_timeout_s: float = Field(
        10.0, gt=0,
        description="A new connection must send its request line and headers within this many seconds, or it is "
        "closed (silent and slow-header connections cannot pile up).",
    )
    max_connections: int = Field(
        1024, ge=1,
        description="Most open client connections. Past it the oldest connection that has not sent a request yet is "
        "closed to make room, or the new one gets 503 if all are busy. Lowered at start-up to fit the process's "
        "file-descriptor limit.",
    )
    forward_timeout_s: float = Field(
        300.0, gt=0,
        description="Watchdog: a forward batch running longer than this fails its items with 503 and turns /health "
        "to 503, so the orchestrator restarts the pod (a hung device cannot be interrupted from Python).",
    )
    request_timeout_s: float = Field(
        150.0, gt=0,
        description="A request not answered within this many seconds gets 504; its queued items are dropped. Below "
        "the 180 s that OpenRLHF and this project's client wait, so they get a clean answer rather than a timeout.",
    )
    drain_timeout_s: float = Field(
        30.0, ge=0,
        description="On SIGTERM, how long requests accepted before the signal may take to finish before the "
        "server exits (new requests get 503 meanwhile).",
    )
    api_keys: SecretStr | None = Field(
        None,
        description="Comma-separated API keys; when any key is set (here or in --api-keys-file) every route except "
        "--public-paths needs 'Authorization: Bearer <key>' (or HTTP Basic with the key as password). Prefer the "
        "environment variable or the file to the flag, which shows in the process list.",
    )
    api_keys_file: str | None = Field(
        None, description="File with one API key per line (blank lines and lines starting with # are ignored)."
    )
    public_paths: str = Field(
        "/health,/ready,/metrics",
        description="Comma-separated paths that need no API key; a trailing * matches a prefix (e.g. /playground*).",
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="Attention kernels: auto = SDPA where the architecture supports it, else its default."
    )
    packing: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Pack a batch's sequences into one row with no padding. auto = on with flash_attention_2 "
        "(varlen kernels), off otherwise (SDPA would build a dense block mask).",
    )
    padding: Literal["auto", "pad", "none"] = Field(
        "auto",
        description="How rows of different lengths share a forward. pad = right-pad them together (GPU); none = only "
        "rows of equal length run together, with no padding mask (CPU, where a mask sends attention to a slower "
        "kernel). auto = none on CPU, pad elsewhere. Ignored when packing is on.",
    )
    prompt_reuse: bool = Field(
        True, description="Run a prompt shared by several items of a batch (GRPO groups) once, reusing its KV cache."
    )
    min_shared_prompt_tokens: int = Field(
        16, ge=1, description="Shortest prompt worth a separate pass when items share it."
    )
    device_map: str | None = Field(
        None,
        description='Spread a model larger than one GPU over the node\'s GPUs (e.g. "auto", needs accelerate); '
        "overrides --device.",
    )
    runner: Literal["hf", "fake"] = Field("hf", description="hf = the real model; fake = deterministic test runner.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

    @model_validator(mode="after")
    def _one_request_fits_the_queue(self) -> "Settings":
        if self.max_items_per_request > self.max_queue_items:
            # A request larger than the queue could never be admitted: clamp rather than refuse to start.
            logging.getLogger("r3hf_server").warning(
                "--max-items-per-request %d exceeds --max-queue-items %d; using %d", self.max_items_per_request,
                self.max_queue_items, self.max_queue_items,
            )
            self.max_items_per_request = self.max_queue_items
        return self

    def model_loading(self) -> ModelLoadSettings:
        """What a runner may see: how to load and run the model, nothing else (no secrets)."""
        return ModelLoadSettings(**self.model_dump(include=set(MODEL_LOADING_FIELDS)))


# The Settings fields a runner reads. A new model-loading flag goes in Settings and here; tests/unit/test_layering.py
# fails if a runner module reads a field missing from this list.
MODEL_LOADING_FIELDS = (
    "model", "revision", "tokenizer", "served_model_name", "dtype", "device", "trust_remote_code", "head_name",
    "label_index", "max_length", "attn_implementation", "packing", "padding", "prompt_reuse", "backbone_module",
    "head_module", "prefix_stride", "max_batch_tokens",
    "min_shared_prompt_tokens", "device_map",
)

# Immutable, and built from the same field definitions (types, defaults, descriptions) as Settings, so the two never
# disagree. ``ModelLoadSettings(model=...)`` works too (tests, benchmarks).
ModelLoadSettings = create_model(
    "ModelLoadSettings",
    __config__=ConfigDict(frozen=True, extra="forbid", protected_namespaces=()),
    __doc__="How to load and run the model: the model-loading subset of Settings, without secrets.",
    **{name: (Settings.model_fields[name].annotation, Settings.model_fields[name]) for name in MODEL_LOADING_FIELDS},
)
