"""The real runner: a Hugging Face reward model, its score head read at every position of one forward pass."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch

from ..errors import ModelRefusedError
from ..settings import ModelLoadSettings
from .attention import attended_forward, last_attention_module
from .base import EncodedItem, ForwardResult, ItemInput, ModelInfo, TruncationMode
from .encoding import TokenizerEncoder
from .expansion import ExpandedRunner, trailing_special_ids
from .fingerprint import model_fingerprint
from .custom_head import forward_score
from .forward import ScoreHead, equal_length_forward, packed_forward, padded_forward, shared_prompt_forward
from .loading import LoadedModel, load_model, served_name
from .memory import is_out_of_memory
from .planning import BatchPolicy, plan_batch
from .probe import ProbeTarget, choose_batch_policy, verify_per_position_head

log = logging.getLogger(__name__)
_NOT_LOOKED_UP = object()


class HFRunner:
    def __init__(self, loaded: LoadedModel, info: ModelInfo, policy: BatchPolicy = BatchPolicy()) -> None:
        self.loaded = loaded
        self._info = info
        self._batch_policy = policy
        self.encoder = TokenizerEncoder(loaded.tokenizer, loaded.max_length, loaded.vocab_size)
        self.model = ScoreHead(
            loaded.backbone, loaded.head, loaded.label_index, loaded.normalization, loaded.device, loaded.pad_id
        )
        self._last_attention_module: Any = _NOT_LOOKED_UP  # found on the first request for attention weights

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def batch_policy(self) -> BatchPolicy:
        return self._batch_policy

    def probe_target(self) -> ProbeTarget:
        """The narrow view the start-up probes get of this model."""
        loaded = self.loaded
        return ProbeTarget(
            model=self.model, own_score=self._own_score, vocab_size=self.encoder.vocab_size, dtype=loaded.dtype,
            device_type=loaded.device.type, attention=loaded.attention, architecture=self.info.architecture,
        )

    def _own_score(self, ids: list[int]) -> float:
        """The model's own forward score of ``ids`` (its pooling, its head), normalised like ours."""
        loaded = self.loaded
        with torch.inference_mode():
            output = loaded.model(input_ids=torch.tensor([ids], device=loaded.device))
        score = forward_score(output, loaded.label_index, len(ids))
        if loaded.normalization is not None:
            score = (score - loaded.normalization[0]) / loaded.normalization[1]
        return score

    def with_policy(self, policy: BatchPolicy) -> HFRunner:
        """The same loaded model run under another batch policy (the policy of a runner never changes)."""
        return HFRunner(self.loaded, replace(self._info, batch_paths=batch_paths(policy)), policy)

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        return self.encoder.encode(item, truncation, with_tokens)

    def forward(self, batch: Sequence[EncodedItem]) -> list[ForwardResult]:
        """Runs ``planning.plan_batch``'s forwards; what they hold is ``planning.batch_cost``."""
        results: list[ForwardResult] = [ForwardResult([]) for _ in batch]
        plan = plan_batch(batch, self.batch_policy)
        # Items that need attention weights run alone (one row, no mask): the rare, opt-in path stays simple and
        # the fast paths below never see them.
        for index in plan.alone:
            results[index] = attended_forward(self.model, self._last_attention(), batch[index].input_ids)
        for prompt, indices in plan.groups:
            responses = [batch[i].input_ids[len(prompt) :] for i in indices]
            shared = shared_prompt_forward(self.model, prompt, responses, self.batch_policy.equal_lengths_only)
            for index, scores in zip(indices, shared):
                results[index] = ForwardResult(scores)
        if plan.singles:
            rows = self.prefix_scores_of_ids([batch[i].input_ids for i in plan.singles])
            for index, scores in zip(plan.singles, rows):
                results[index] = ForwardResult(scores)
        return results

    def _last_attention(self):  # type: ignore[no-untyped-def]
        if self._last_attention_module is _NOT_LOOKED_UP:
            self._last_attention_module = last_attention_module(self.model.backbone)
        return self._last_attention_module

    def prefix_scores_of_ids(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        if self.batch_policy.packed:
            return packed_forward(self.model, sequences)
        if self.batch_policy.equal_lengths_only:
            return equal_length_forward(self.model, sequences)
        return padded_forward(self.model, sequences)


def build_hf_runner(settings: ModelLoadSettings) -> HFRunner | ExpandedRunner:
    if not isinstance(settings, ModelLoadSettings):  # the server's Settings hold API keys a runner must not see
        raise TypeError("build_hf_runner takes ModelLoadSettings: pass settings.model_loading()")
    loaded = load_model(settings)
    with _forward_failures_refused(loaded):
        if loaded.prefix_scores == "expanded":
            return _expanded_runner(settings, loaded)
        probing = HFRunner(loaded, _model_info(settings, loaded))  # the plain padded pass every fast path must match
        verify_per_position_head(probing.probe_target())
        runner = probing.with_policy(choose_batch_policy(probing.probe_target(), settings))
    log.info(
        "loaded %s (%s, %s on %s, %s attention, max length %d, fingerprint %s, batch paths %s)", runner.info.name,
        runner.info.architecture, runner.info.dtype, runner.info.device, runner.info.attention_implementation,
        loaded.max_length, runner.info.fingerprint, ", ".join(runner.info.batch_paths),
    )
    return runner


@contextmanager
def _forward_failures_refused(loaded: LoadedModel) -> Iterator[None]:
    """A model whose forward raises in this dtype/device (a kernel without bf16 support, say) is refused at start-up
    with the reason, instead of failing every request."""
    try:
        yield
    except (ModelRefusedError, MemoryError):
        raise
    except Exception as exc:
        if is_out_of_memory(exc):  # the start-up failure line says what to do about memory
            raise
        dtype = str(loaded.dtype).removeprefix("torch.")
        raise ModelRefusedError(
            f"{type(loaded.model).__name__} fails a forward pass in {dtype} on {loaded.device} "
            f"({type(exc).__name__}: {str(exc)[:200]}): "
            + ("try --dtype float32" if dtype != "float32" else "try another --attn-implementation")
        ) from exc


def _expanded_runner(settings: ModelLoadSettings, loaded: LoadedModel) -> ExpandedRunner:
    """An encoder RM: no one-pass probe applies (it pools and attends both ways); every prefix is its own pass."""
    suffix = trailing_special_ids(loaded.tokenizer)
    policy = BatchPolicy(prefix_stride=settings.prefix_stride, suffix_tokens=len(suffix))
    info = replace(_model_info(settings, loaded), prefix_scores="expanded", batch_paths=("expanded",))
    runner = ExpandedRunner(loaded, info, policy, settings.max_batch_tokens)
    runner.forward([EncodedItem(tuple(range(1, 9)), 4, 8)])  # it must run here, in this dtype, before serving
    log.info(
        "loaded %s (%s, %s on %s, %s attention, max length %d, fingerprint %s): an encoder, so every response "
        "prefix is scored as its own sequence (stride %d, suffix %s)", info.name, info.architecture, info.dtype,
        info.device, info.attention_implementation, loaded.max_length, info.fingerprint, settings.prefix_stride,
        list(suffix),
    )
    return runner


def batch_paths(policy: BatchPolicy) -> tuple[str, ...]:
    """The forwards a batch may run under ``policy``, as /info reports them."""
    rows = "packed" if policy.packed else "equal_lengths" if policy.equal_lengths_only else "padded"
    return (rows, "shared_prompt") if policy.share_prompts else (rows,)


def _model_info(settings: ModelLoadSettings, loaded: LoadedModel) -> ModelInfo:
    tok, dtype_name = loaded.tokenizer, str(loaded.dtype).removeprefix("torch.")
    backend = getattr(tok, "backend_tokenizer", None)
    fingerprint = model_fingerprint(
        model_dir=loaded.model_dir,
        config_json=_config_json(loaded.model.config),
        head_bytes=b"".join(p.detach().float().cpu().numpy().tobytes() for p in loaded.head.parameters()),
        tokenizer_json=backend.to_str() if backend is not None else repr(tok),
        chat_template=getattr(tok, "chat_template", None),
        label_index=loaded.label_index,
        dtype=dtype_name,
        normalization=loaded.normalization,
    )
    return ModelInfo(
        name=served_name(settings),
        model_path=settings.model,
        fingerprint=fingerprint,
        architecture=type(loaded.model).__name__,
        dtype=dtype_name,
        device=str(loaded.device),
        max_length=loaded.max_length,
        num_labels=int(loaded.model.config.num_labels),
        label_index=loaded.label_index,
        score_normalization=loaded.normalization,
        has_chat_template=getattr(tok, "chat_template", None) is not None,
        attention_implementation=loaded.attention,
    )


def _config_json(config) -> str:  # type: ignore[no-untyped-def]
    """The config minus where it was loaded from, so the same model gets the same fingerprint in any directory."""
    fields = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    return json.dumps(fields, sort_keys=True, default=str)
