"""Load a Hugging Face reward model and refuse, with the reason, any that cannot give exact per-token rewards."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from ..errors import ModelRefusedError
from ..settings import DEMO_MODEL_DIR, Settings

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_POSITION_LIMIT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_HEAD_ATTRIBUTES = ("score", "classifier", "value_head", "v_head")
_UNBOUNDED_TOKENIZER_LIMIT = 10**7  # transformers' "no limit" sentinel is ~1e30


@dataclass
class LoadedModel:
    model: Any
    backbone: Any
    head: Any
    head_name: str
    tokenizer: Any
    model_dir: Path | None
    device: torch.device
    dtype: torch.dtype
    label_index: int
    normalization: tuple[float, float] | None
    max_length: int


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting == "auto":  # exactness first on CPU, where bf16 is opt-in
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[setting]


def load_model(settings: Settings) -> LoadedModel:
    hf_logging.disable_progress_bar()
    settings = _usable_device_map(settings)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    common = {"revision": settings.revision, "trust_remote_code": settings.trust_remote_code}
    config = AutoConfig.from_pretrained(settings.model, **common)
    _refuse_encoder_decoder(config)
    label_index = _label_index(config, settings.label_index)
    model = _load_weights(settings, config, dtype, device, common)
    tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer or settings.model, **common)
    if not getattr(tokenizer, "is_fast", True):
        raise ModelRefusedError("a fast tokenizer is required (character offsets locate the response)")
    head_name, head = _find_head(model, config.num_labels)
    if settings.device_map:
        device = model.get_input_embeddings().weight.device
    return LoadedModel(
        model=model,
        backbone=getattr(model, model.base_model_prefix),
        head=head,
        head_name=head_name,
        tokenizer=tokenizer,
        model_dir=_local_dir(settings),
        device=device,
        dtype=dtype,
        label_index=label_index,
        normalization=_normalization(config),
        max_length=_max_length(settings.max_length, tokenizer, config),
    )


def _usable_device_map(settings: Settings) -> Settings:
    """device_map spreads a model over GPUs; without any it falls back to --device, said in the log."""
    if not settings.device_map:
        return settings
    if not torch.cuda.is_available():
        log.warning("--device-map %s ignored: no CUDA device; loading on %s", settings.device_map, settings.device)
        return settings.model_copy(update={"device_map": None})
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise ModelRefusedError("--device-map needs the accelerate package: pip install accelerate") from exc
    return settings


def _refuse_encoder_decoder(config: Any) -> None:
    if getattr(config, "is_encoder_decoder", False):
        raise ModelRefusedError(
            f"{config.model_type} is an encoder-decoder model; per-token rewards need a causal (decoder-only) "
            "reward model whose score head is applied at every position"
        )


def _label_index(config: Any, requested: int | None) -> int:
    num_labels = int(config.num_labels)
    if requested is None:
        if num_labels > 1:
            raise ModelRefusedError(
                f"the score head has {num_labels} outputs; say which one is the reward with --label-index"
            )
        return 0
    if requested >= num_labels:
        raise ModelRefusedError(f"--label-index {requested} is out of range for a head with {num_labels} outputs")
    return requested


def _load_weights(settings: Settings, config: Any, dtype: torch.dtype, device: torch.device, common: dict) -> Any:
    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True, **common}
    if settings.head_name:
        # A head saved under another name (OpenRLHF's value_head) is loaded into the architecture's `score`.
        kwargs["key_mapping"] = {rf"^{re.escape(settings.head_name)}\.": "score."}
    if settings.device_map:
        kwargs["device_map"] = settings.device_map
    elif device.type == "cuda":
        kwargs["device_map"] = str(device)
    attention = "sdpa" if settings.attn_implementation == "auto" else settings.attn_implementation
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            settings.model, config=config, attn_implementation=attention, **kwargs
        )
    except (ValueError, ImportError) as exc:
        if settings.attn_implementation != "auto" or "sdpa" not in str(exc).lower():
            raise
        log.info("%s does not support SDPA attention; using its default", config.model_type)
        model, info = AutoModelForSequenceClassification.from_pretrained(settings.model, config=config, **kwargs)
    _refuse_missing_weights(info, settings.head_name)
    if settings.device_map:  # accelerate placed the layers; the inputs go where the embeddings are
        return model.eval()
    return model.to(device).eval()


def _refuse_missing_weights(info: dict, head_name: str | None) -> None:
    missing = sorted(info.get("missing_keys") or [])
    if not missing:
        return
    unexpected = sorted(info.get("unexpected_keys") or [])
    hint = f" The checkpoint has unused weights {unexpected[:5]}: pass the head's name with --head-name." if unexpected else ""
    if any(key.split(".")[0] in _HEAD_ATTRIBUTES for key in missing):
        raise ModelRefusedError(
            f"the score head ({', '.join(missing[:5])}) is not in the checkpoint and would be initialised at "
            "random: this is a base language model or its head is saved under another name." + hint
        )
    raise ModelRefusedError(f"weights missing from the checkpoint would be initialised at random: {missing[:10]}")


def _find_head(model: Any, num_labels: int) -> tuple[str, Any]:
    for name in _HEAD_ATTRIBUTES:
        module = getattr(model, name, None)
        if isinstance(module, torch.nn.Module):
            return name, module
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear) and module.out_features == num_labels:
            return name, module
    raise ModelRefusedError(f"{type(model).__name__} has no score head this server can apply per position")


def _normalization(config: Any) -> tuple[float, float] | None:
    """OpenRLHF stores (mean, std) in the config and applies them when normalize_reward is set."""
    if getattr(config, "normalize_reward", False):
        mean, std = float(getattr(config, "mean", 0.0)), float(getattr(config, "std", 1.0))
        if std <= 0:
            raise ModelRefusedError(f"the config's reward std is {std}; it must be positive")
        return mean, std
    return None


def _max_length(requested: int | None, tokenizer: Any, config: Any) -> int:
    limits = [getattr(config, key) for key in _POSITION_LIMIT_KEYS if isinstance(getattr(config, key, None), int)]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < _UNBOUNDED_TOKENIZER_LIMIT:
        limits.append(tokenizer_limit)
    if requested is not None:
        limits.append(requested)
    if not limits:
        raise ModelRefusedError("neither the model nor the tokenizer states a maximum length; set --max-length")
    return min(limits)


def _local_dir(settings: Settings) -> Path | None:
    path = Path(settings.model)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(settings.model, revision=settings.revision, local_files_only=True))
    except Exception:  # the fingerprint then rests on the head, tokenizer and settings only
        return None


def served_name(settings: Settings) -> str:
    if settings.served_model_name:
        return settings.served_model_name
    return "r3hf-demo-rm" if Path(settings.model) == DEMO_MODEL_DIR else settings.model
