"""The real runner: one forward pass of a Hugging Face reward model, its score head read at every position."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import torch

from ..errors import ModelRefusedError
from ..settings import Settings
from .base import EncodedItem, ItemInput, ModelInfo, TruncationMode
from .encoding import TokenizerEncoder
from .fingerprint import model_fingerprint
from .loading import LoadedModel, load_model, served_name

log = logging.getLogger(__name__)

_PROBE_LENGTH = 12


class HFRunner:
    def __init__(self, loaded: LoadedModel, info: ModelInfo) -> None:
        self.loaded = loaded
        self.info = info
        vocab_size = loaded.model.get_input_embeddings().num_embeddings
        self.encoder = TokenizerEncoder(loaded.tokenizer, loaded.max_length, vocab_size)
        tok = loaded.tokenizer
        self._pad_id = next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        return self.encoder.encode(item, truncation, with_tokens)

    def prefix_scores(self, batch: Sequence[EncodedItem]) -> list[list[float]]:
        return self.prefix_scores_of_ids([item.input_ids for item in batch])

    def prefix_scores_of_ids(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """Score head at every position of one right-padded forward pass.

        Right padding keeps every real token at its natural position, and causal attention keeps the padding out
        of every real position, so an item's scores do not depend on its batch mates.
        """
        loaded = self.loaded
        lengths = [len(ids) for ids in sequences]
        input_ids = torch.full((len(sequences), max(lengths)), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        with torch.inference_mode():
            hidden = loaded.backbone(
                input_ids=input_ids.to(loaded.device), attention_mask=attention_mask.to(loaded.device)
            ).last_hidden_state
            scores = loaded.head(hidden)[..., loaded.label_index].float()
            if loaded.normalization is not None:
                mean, std = loaded.normalization
                scores = (scores - mean) / std
            scores = scores.cpu()
        return [scores[row, :n].tolist() for row, n in enumerate(lengths)]


def build_hf_runner(settings: Settings) -> HFRunner:
    loaded = load_model(settings)
    runner = HFRunner(loaded, _model_info(settings, loaded))
    verify_per_position_head(runner)
    log.info("loaded %s (%s, %s on %s, max length %d, fingerprint %s)", runner.info.name,
             runner.info.architecture, runner.info.dtype, runner.info.device, loaded.max_length,
             runner.info.fingerprint)
    return runner


def _model_info(settings: Settings, loaded: LoadedModel) -> ModelInfo:
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
    )


def _config_json(config) -> str:  # type: ignore[no-untyped-def]
    """The config minus where it was loaded from, so the same model gets the same fingerprint in any directory."""
    fields = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    return json.dumps(fields, sort_keys=True, default=str)


def verify_per_position_head(runner: HFRunner) -> None:
    """Refuse models whose head is not a per-position function of a causal backbone.

    Two checks on a probe sequence: our last-position score equals the model's own pooled logit (fails for encoder
    RMs that pool a CLS token, e.g. BERT/DeBERTa), and prefix scores of one pass equal those of a pass over a
    shorter prefix (fails for bidirectional attention).
    """
    loaded = runner.loaded
    vocab = runner.encoder.vocab_size
    probe = [(7 + 13 * i) % vocab for i in range(_PROBE_LENGTH)]
    probe = [t if t != runner._pad_id else (t + 1) % vocab for t in probe]
    full = runner.prefix_scores_of_ids([probe])[0]
    with torch.inference_mode():
        pooled = loaded.model(input_ids=torch.tensor([probe], device=loaded.device)).logits
    pooled_score = float(pooled[0, loaded.label_index].float())
    if loaded.normalization is not None:
        pooled_score = (pooled_score - loaded.normalization[0]) / loaded.normalization[1]
    tolerance = 1e-3 if loaded.dtype == torch.float32 else 5e-2
    if not _close(full[-1], pooled_score, tolerance):
        raise ModelRefusedError(
            f"{runner.info.architecture}'s score head is not applied per position (its own score {pooled_score:.4g} "
            f"differs from the head at the last token {full[-1]:.4g}): encoder reward models that pool a CLS token "
            "cannot give prefix scores"
        )
    half = runner.prefix_scores_of_ids([probe[: _PROBE_LENGTH // 2]])[0]
    if not all(_close(a, b, tolerance) for a, b in zip(half, full)):
        raise ModelRefusedError(
            f"{runner.info.architecture} is not causal: a prefix's scores change when later tokens are added, so "
            "the score at position t is not the score of the prefix y<=t"
        )


def _close(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
