"""Load a Hugging Face reward model and refuse, with the reason, any that cannot give exact per-token rewards."""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES
from transformers.utils import logging as hf_logging

from ..errors import ModelRefusedError
from ..settings import DEMO_MODEL_DIR, ModelLoadSettings
from .checkpoint import check_model_directory, check_model_source, checkpoint_tensor_shapes
from .custom_head import auto_class_for, custom_code_hint, head_output_count, hidden_size_of, resolve_module

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
    attention: str = "eager"
    prefix_scores: str = "one_pass"  # "expanded" for encoder architectures (see runner/prefixes.py)

    @property
    def vocab_size(self) -> int:
        """Rows of the input embedding: ids at or past it are refused (the tokenizer's own size may differ)."""
        return self.model.get_input_embeddings().num_embeddings

    @property
    def pad_id(self) -> int:
        """The id padded positions carry: the tokenizer's pad, else its EOS, else 0 (they are masked out anyway)."""
        tok = self.tokenizer
        return next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting == "auto":  # exactness first on CPU, where bf16 is opt-in
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[setting]


def load_model(settings: ModelLoadSettings) -> LoadedModel:
    hf_logging.disable_progress_bar()
    settings = _usable_device_map(settings)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    common = {"revision": settings.revision, "trust_remote_code": settings.trust_remote_code}
    local = check_model_source(settings.model)
    if local is not None:
        check_model_directory(local)
    config = _load_config(settings.model, common)
    _refuse_encoder_decoder(config)
    auto_class = auto_class_for(config, settings.trust_remote_code)
    custom = auto_class is not AutoModelForSequenceClassification
    label_index = None if custom else _label_index(int(config.num_labels), settings.label_index)
    tokenizer = _load_tokenizer(settings, common)  # before the weights: a missing tokenizer fails in seconds
    model = _load_weights(settings, config, dtype, device, common, auto_class)
    if settings.device_map:
        device = model.get_input_embeddings().weight.device
    head_name = settings.head_module or ""
    head = resolve_module(model, head_name, "--head-module") if head_name else None
    if head is None:
        head_name, head = _find_head(model, config.num_labels)
    backbone_name = settings.backbone_module or model.base_model_prefix
    backbone = resolve_module(model, backbone_name, "--backbone-module")
    if label_index is None:  # a custom head: how many outputs it has is known only by running it
        label_index = _label_index(head_output_count(head, hidden_size_of(model), dtype, device), settings.label_index)
    return LoadedModel(
        model=model,
        backbone=backbone,
        head=head,
        head_name=head_name,
        tokenizer=tokenizer,
        model_dir=_local_dir(settings),
        device=device,
        dtype=dtype,
        label_index=label_index,
        normalization=_normalization(config),
        max_length=_max_length(settings.max_length, tokenizer, config),
        attention=str(getattr(model.config, "_attn_implementation", None) or "eager"),
        prefix_scores="one_pass" if custom or not is_encoder(config) else "expanded",
    )


def is_encoder(config: Any) -> bool:
    """An encoder architecture: transformers has a masked-LM class for it (BERT, RoBERTa, DeBERTa, ModernBERT,
    ELECTRA, ...) and the config does not make it a decoder. Decoders (Llama, Gemma, ...) have none."""
    return config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)


def _load_config(model: str, common: dict) -> Any:
    try:
        return AutoConfig.from_pretrained(model, **common)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelRefusedError(
                f"{model} needs its own model code: pass --trust-remote-code if you trust that code"
            ) from exc
        raise ModelRefusedError(f"cannot read the config of {model}: {_first_line(exc)}") from exc
    except OSError as exc:
        raise ModelRefusedError(
            f"cannot find {model} locally or download it ({_first_line(exc)}): pass a local directory, or stage "
            "the model in the hub cache"
        ) from exc


def _load_tokenizer(settings: ModelLoadSettings, common: dict) -> Any:
    source = settings.tokenizer or settings.model
    if settings.tokenizer:
        check_model_source(settings.tokenizer, "--tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelRefusedError(
            f"no usable tokenizer in {source} ({_first_line(exc)}): save the tokenizer beside the model or pass "
            "--tokenizer"
        ) from exc
    if not getattr(tokenizer, "is_fast", True):
        raise ModelRefusedError("a fast tokenizer is required (character offsets locate the response)")
    return tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _usable_device_map(settings: ModelLoadSettings) -> ModelLoadSettings:
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


def _label_index(num_labels: int, requested: int | None) -> int:
    if requested is None:
        if num_labels > 1:
            raise ModelRefusedError(
                f"the score head has {num_labels} outputs; say which one is the reward with --label-index"
            )
        return 0
    if requested >= num_labels:
        raise ModelRefusedError(f"--label-index {requested} is out of range for a head with {num_labels} outputs")
    return requested


def _load_weights(
    settings: ModelLoadSettings, config: Any, dtype: torch.dtype, device: torch.device, common: dict,
    auto_class: type = AutoModelForSequenceClassification,
) -> Any:
    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True, **common}
    if settings.head_name:
        # A head saved under another name (OpenRLHF's value_head) is loaded into the architecture's `score`.
        kwargs["key_mapping"] = {rf"^{re.escape(settings.head_name)}\.": "score."}
    if settings.device_map:
        kwargs["device_map"] = settings.device_map
    elif device.type == "cuda":
        kwargs["device_map"] = str(device)
    # None lets transformers choose: SDPA where the class supports it, else the class's default (eager). A fresh
    # config each time, so no implementation chosen by an earlier attempt sticks to it.
    attention = None if settings.attn_implementation == "auto" else settings.attn_implementation
    try:
        model, info = auto_class.from_pretrained(
            settings.model, config=copy.deepcopy(config), attn_implementation=attention, **kwargs
        )
    except (ValueError, ImportError) as exc:
        if attention is not None and "attention" in str(exc).lower():
            raise ModelRefusedError(
                f"--attn-implementation {attention} is not available for {config.model_type} here "
                f"({_first_line(exc)}): use --attn-implementation auto"
            ) from exc
        raise ModelRefusedError(f"cannot load the weights of {settings.model}: {_first_line(exc)}") from exc
    except RuntimeError as exc:  # e.g. --head-name naming a tensor of another shape than the score head
        hint = f" (check --head-name {settings.head_name})" if settings.head_name else ""
        raise ModelRefusedError(f"the checkpoint does not fit the model: {_first_line(exc)}{hint}") from exc
    _refuse_missing_weights(info, settings, model, config)
    if settings.device_map:  # accelerate placed the layers; the inputs go where the embeddings are
        return model.eval()
    return model.to(device).eval()


def _refuse_missing_weights(info: dict, settings: ModelLoadSettings, model: Any, config: Any) -> None:
    missing = sorted(info.get("missing_keys") or [])
    if not missing:
        return
    mismatched = info.get("mismatched_keys") or []
    if settings.head_name and (mismatched or any(key.startswith("score.") for key in missing)):
        raise ModelRefusedError(
            f"--head-name {settings.head_name}: the checkpoint has no tensor of the score head's shape under that "
            f"name (missing {missing[:3]}); pass the name of the reward head's weights, or omit --head-name"
        )
    if any(key.split(".")[0] in _HEAD_ATTRIBUTES for key in missing):
        raise ModelRefusedError(
            f"the score head ({', '.join(missing[:5])}) is not in the checkpoint and would be initialised at "
            "random: " + _head_hint(info, model, missing, _local_dir(settings), config)
        )
    raise ModelRefusedError(f"weights missing from the checkpoint would be initialised at random: {missing[:10]}")


def _head_hint(info: dict, model: Any, missing: list[str], model_dir: Path | None, config: Any) -> str:
    """Suggest --head-name only for an unused checkpoint module whose tensors are exactly the head's (same leaves,
    same shapes): an LM head would fail to load, and one layer of an MLP head would load and score wrongly."""
    if custom_code_hint(config):
        return "the checkpoint is a custom-code model." + custom_code_hint(config)
    wanted = {key.split(".", 1)[1]: tuple(model.state_dict()[key].shape) for key in missing if key in model.state_dict()}
    shapes = checkpoint_tensor_shapes(model_dir)
    unexpected = sorted(info.get("unexpected_keys") or [])
    for prefix in sorted({key.rpartition(".")[0] for key in unexpected}):
        under = {key[len(prefix) + 1 :]: shapes.get(key) for key in unexpected if key.startswith(prefix + ".")}
        same_root = [key for key in unexpected if key.split(".")[0] == prefix.split(".")[0]]
        if under == wanted and len(same_root) == len(under):
            return f"its head seems to be saved as {prefix}: pass --head-name {prefix}."
    return "this is a base language model (or its head is saved under a name of another shape): serve a reward model."


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


def _local_dir(settings: ModelLoadSettings) -> Path | None:
    path = Path(settings.model)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(settings.model, revision=settings.revision, local_files_only=True))
    except Exception:  # the fingerprint then rests on the head, tokenizer and settings only
        return None


def served_name(settings: ModelLoadSettings) -> str:
    if settings.served_model_name:
        return settings.served_model_name
    return "r3hf-demo-rm" if Path(settings.model) == DEMO_MODEL_DIR else settings.model
