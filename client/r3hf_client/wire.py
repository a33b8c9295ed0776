"""Wire models of the HTTP API, shared by the server and the client.

They import neither torch nor FastAPI so the thin client can use them. Every request model forbids unknown fields:
a misspelt option must never silently change results.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from .options import Baseline, EncodingFormat, ItemForm, Redistribution, Truncation

NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextItem(_Strict):
    """The RM reads ``prompt + response`` tokenized once as a whole, with the tokenizer's default special tokens."""

    prompt: str = Field(description="Text before the response, already templated if the RM expects a template.")
    response: str = Field(description="The policy's response text. A token straddling the boundary belongs to it.")


class IdsItem(_Strict):
    """Token ids in the RM's vocabulary, used exactly as given (no special tokens added)."""

    prompt_ids: list[NonNegativeInt] = Field(description="Prompt token ids, special tokens included if wanted.")
    response_ids: list[NonNegativeInt] = Field(description="Response token ids; exactly one reward per id.")


class ChatMessage(_Strict):
    role: str = Field(description="system, user, assistant, ...")
    content: str


class ChatItem(_Strict):
    """Rendered with the RM tokenizer's chat template; the last message is the assistant response being scored."""

    messages: list[ChatMessage] = Field(min_length=1, description="The conversation; the last must be the assistant's.")


# One entry per item form (options.ItemForm): the request union, the form check and the server's conversion all
# derive from it. An item's form is told by its keys.
ITEM_FORMS: dict[ItemForm, type[BaseModel]] = {"text": TextItem, "ids": IdsItem, "chat": ChatItem}
_FORM_KEYS = {form: frozenset(model.model_fields) for form, model in ITEM_FORMS.items()}
_FORM_BY_CLASS = {model: form for form, model in ITEM_FORMS.items()}


def _item_form(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return _FORM_BY_CLASS.get(type(value))
    if not isinstance(value, dict):
        return None
    forms = [form for form, keys in _FORM_KEYS.items() if keys & value.keys()]
    return forms[0] if len(forms) == 1 else None


def _check_one_form(value: Any) -> Any:
    if isinstance(value, dict) and _item_form(value) is None:
        shapes = ["{" + ", ".join(sorted(keys, key=len)) + "}" for keys in _FORM_KEYS.values()]
        forms = ", ".join(shapes[:-1]) + " or " + shapes[-1]
        raise ValueError(f"each item must use exactly one form: {forms}; got keys {sorted(value)}")
    return value


Item = Annotated[
    Union[tuple(Annotated[model, Tag(form)] for form, model in ITEM_FORMS.items())],  # type: ignore[valid-type]
    Discriminator(_item_form),
    BeforeValidator(_check_one_form),
]

# How prefix scores are computed: one forward per item (a causal head read at every position), or every prefix as
# its own sequence (encoder reward models).
PrefixScoresMode = Literal["one_pass", "expanded"]
BatchPath = Literal["padded", "equal_lengths", "packed", "shared_prompt", "expanded"]
_TRUNCATION_DOC = (
    '"error": an over-length item is rejected (422) naming the item, its length and the limit. '
    '"left": the start of the prompt is dropped (never the response) and the result says truncated=true.'
)


class ScoreRequest(_Strict):
    items: list[Item] = Field(min_length=1, description="Items to score, each in exactly one form.")
    truncation: Truncation = Field("error", description=_TRUNCATION_DOC)


class TokenRewardsRequest(ScoreRequest):
    redistribution: Redistribution = Field(
        "r3hf",
        description='"r3hf": r_t = R(x, y<=t) - R(x, y<=t-1) from one forward pass (Eq. 6). '
        '"sparse": 0 everywhere but the last response token, which gets the score (Eq. 3). '
        '"uniform": score / T on each of the T response tokens. '
        '"attention" (ABC, Chan et al. 2024): score * a_t / sum(a), a_t = the last layer\'s head-averaged attention '
        "from the final position to response token t (same forward pass; items run unbatched, so slower).",
    )
    beta: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Eq. 7 mix: beta * redistributed + (1 - beta) * sparse, for every strategy. 1 = pure strategy.",
    )
    baseline: Baseline = Field(
        "prompt",
        description='"prompt": the first token is measured against R(x, empty) = the score at the prompt\'s last '
        'token, so rewards sum to score - prompt_score. "zero": the first token gets R(x, y<=1), so they sum to score. '
        "Only r3hf reads it: the other strategies always spread the score itself.",
    )
    return_tokens: bool = Field(False, description="Also return each response token's string and offsets.")
    encoding_format: EncodingFormat = Field(
        "float",
        description='How token_rewards travel: "float" = a JSON array of numbers (float64, exact); "base64" = a '
        "base64 string of little-endian float32 values, about 4x smaller for long responses, at float32 precision "
        "(r3hf_client decodes it back to a list).",
    )


class Usage(BaseModel):
    num_items: int = Field(description="Items scored.")
    prompt_tokens: int = Field(description="Tokens before the response, after any truncation.")
    response_tokens: int = Field(description="Response tokens (one reward each).")
    total_tokens: int = Field(description="All tokens the model read, template suffix and special tokens included.")


class ScoreResult(BaseModel):
    index: int = Field(description="Position of the item in the request.")
    score: float = Field(description="R(x, y): the raw score-head output at the last token (no sigmoid).")
    prompt_score: float = Field(description="R(x, empty): the score at the last token before the response (0 if none).")
    num_response_tokens: int = Field(description="Number of response tokens.")
    truncated: bool = Field(description="The start of the prompt was dropped to fit the model's max length.")
    template_changed_response: bool = Field(
        description="Chat form only: the chat template altered the response text (e.g. trimmed whitespace)."
    )


class TokenRewardResult(ScoreResult):
    token_rewards: Union[list[float], str] = Field(
        description="One reward per response token. Tokens after the response (EOS, template suffix) add their score "
        "change to the last response token, so the rewards sum to score - prompt_score (baseline prompt). A base64 "
        'string of little-endian float32 values when the request asked for encoding_format "base64".'
    )
    tokens: list[str] | None = Field(None, description="Response token strings (return_tokens only).")
    offsets: list[tuple[int, int]] | None = Field(
        None,
        description="[start, end) Python string indices into the response (as rendered, for the chat form), clamped "
        "to [0, len(response)] (return_tokens only; null for the ids form, which has no response string).",
    )


class ScoreResponse(BaseModel):
    model: str = Field(description="Served model name.")
    fingerprint: str = Field(description="Hash of what scored: weights, tokenizer, template, label index, dtype.")
    results: list[ScoreResult] = Field(description="One result per item, in request order.")
    usage: Usage


class TokenRewardsResponse(ScoreResponse):
    results: list[TokenRewardResult] = Field(description="One result per item, in request order.")  # type: ignore[assignment]


class InfoResponse(BaseModel):
    model: str = Field(description="Served model name.")
    model_path: str = Field(description="Where the weights were loaded from (path or hub id).")
    fingerprint: str
    architecture: str = Field(description="The transformers class that scores.")
    dtype: str
    device: str
    max_length: int = Field(description="Tokens per item: the smaller of the tokenizer's and the model's limits.")
    num_labels: int
    label_index: int = Field(description="Which output of the score head is the reward.")
    score_normalization: tuple[float, float] | None = Field(
        None, description="(mean, std) applied as (raw - mean) / std when the model config asks for it."
    )
    has_chat_template: bool
    version: str = Field(description="Server version.")
    attention_implementation: str = Field(
        "", description="The attention kernels transformers runs (sdpa, eager, flash_attention_2, ...)."
    )
    prefix_scores: PrefixScoresMode = Field(
        "one_pass",
        description="one_pass: a causal head read at every position of one forward; expanded: every response "
        "prefix scored as its own sequence (encoder reward models).",
    )
    batch_paths: list[BatchPath] = Field(
        default_factory=list,
        description="Forwards in use: padded or equal_lengths or packed rows, shared_prompt (GRPO groups run their "
        "prompt once), expanded (prefix expansion).",
    )


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong and what to change.")
    error_type: str = Field(description="Machine-readable kind; see r3hf_client.errors.ErrorType.")
