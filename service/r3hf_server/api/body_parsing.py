"""Parse a scoring request's JSON body at a cost bounded by its size, before any per-element validation.

FastAPI parses a body with ``json.loads`` on the event loop and then lets pydantic collect one error object per bad
element: a 2 MiB ``{"items": [1, 1, …]}`` became a million error dicts (2.3 GiB, 6 s with /health frozen). Here,
in a worker thread:

1. msgspec decodes the body against a *shape* of the request: items are objects with known keys (unknown keys are
   refused at the first one), text is text, option values and id lists stay undecoded byte slices
   (``msgspec.Raw``). The first wrong element ends the decode, and each item (or OpenRLHF query) is counted as it is
   decoded, so the item cap stops the decode at item cap + 1, before the rest is ever built.
2. Id lists are bounded by counting commas (a C-speed scan) before they are decoded, again stopping at the first
   bad id. Option values longer than a few KiB are refused unread.
3. pydantic validates item by item (at most ``MAX_REPORTED_ERRORS`` errors are kept) and the request model is built
   from the validated items, so the route receives the very model FastAPI would have built.

Every step is a short C call, so the event loop thread gets the GIL back between items.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from pydantic import BaseModel, TypeAdapter, ValidationError

from r3hf_client import wire
from r3hf_client.adapters.protocols import OpenRLHFRequest, SlimeRequest
from r3hf_client.errors import ErrorType

MAX_REPORTED_ERRORS = 5
MAX_OPTION_BYTES = 4096  # an option value (truncation, beta, ...) is a few bytes; a megabyte one is an attack


class BodyRejected(Exception):
    """The body cannot become a request; carries the error kind and the sentence for the client."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class BodyLimits:
    max_items: int
    max_ids_per_list: int


_COUNTER: contextvars.ContextVar[list[int]] = contextvars.ContextVar("r3hf_item_counter")
_LIMITS: contextvars.ContextVar[BodyLimits] = contextvars.ContextVar("r3hf_body_limits")


def _count_one() -> None:
    """Called as each item is decoded: past the cap the decode stops here, before the rest of the list is built."""
    counter, limits = _COUNTER.get(), _LIMITS.get()
    counter[0] += 1
    if counter[0] > limits.max_items:
        raise ValueError(f"__too_many__ more than {limits.max_items} items")


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    role: str
    content: str


class _Item(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    prompt: str | msgspec.UnsetType = msgspec.UNSET
    response: str | msgspec.UnsetType = msgspec.UNSET
    prompt_ids: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    response_ids: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    messages: list[_Message] | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        _count_one()


class _CountedText(str):
    """An OpenRLHF query or prompt: msgspec hands each one to the hook as it is decoded, so it is counted there."""

    __slots__ = ()


def _decode_hook(kind: type, value: Any) -> Any:
    if kind is _CountedText:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        _count_one()
        return _CountedText(value)
    raise NotImplementedError(kind)


def _core_shape(model: type[BaseModel]) -> type[msgspec.Struct]:
    options = [(name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for name in model.model_fields if name != "items"]
    return msgspec.defstruct(f"{model.__name__}Shape", [("items", list[_Item]), *options], forbid_unknown_fields=True)


class _OpenRLHFShape(msgspec.Struct):  # unknown keys ignored, as OpenRLHFRequest does; labels are never read
    query: list[_CountedText]
    prompts: list[_CountedText] | None = None


class _SlimeShape(msgspec.Struct):
    prompt: str
    response: str


_ITEM = TypeAdapter(wire.Item)
_SHAPES: dict[type[BaseModel], type[msgspec.Struct]] = {
    wire.ScoreRequest: _core_shape(wire.ScoreRequest),
    wire.TokenRewardsRequest: _core_shape(wire.TokenRewardsRequest),
    OpenRLHFRequest: _OpenRLHFShape,
    SlimeRequest: _SlimeShape,
}
_DECODERS = {model: msgspec.json.Decoder(shape, dec_hook=_decode_hook) for model, shape in _SHAPES.items()}
_IDS_DECODER = msgspec.json.Decoder(list[Annotated[int, msgspec.Meta(ge=0)]])
PARSED_MODELS = frozenset(_SHAPES)


def parse_body(model: type[BaseModel], raw: bytes, limits: BodyLimits) -> BaseModel:
    """The request model for ``raw``, or BodyRejected; memory and time stay a small multiple of ``len(raw)``."""
    shape = _decode_shape(model, raw, limits)
    if model is OpenRLHFRequest:
        return _validated(model, {"query": shape.query, "prompts": shape.prompts})
    if model is SlimeRequest:
        return _validated(model, {"prompt": shape.prompt, "response": shape.response})
    items = [_validated_item(index, item, limits) for index, item in enumerate(shape.items)]
    return _validated(model, {**_options(model, shape), "items": items})


def _decode_shape(model: type[BaseModel], raw: bytes, limits: BodyLimits) -> Any:
    counter_token, limits_token = _COUNTER.set([0]), _LIMITS.set(limits)
    try:
        return _DECODERS[model].decode(raw)
    except msgspec.ValidationError as exc:
        raise _rejection(str(exc), limits) from None
    except msgspec.DecodeError as exc:
        if _SURROGATE_ESCAPE.search(raw):  # msgspec refuses a lone surrogate with a misleading message
            raise BodyRejected(ErrorType.INVALID_REQUEST, _LONE_SURROGATE) from None
        raise BodyRejected(ErrorType.MALFORMED_REQUEST, f"the request body is not valid JSON: {exc}") from None
    finally:
        _COUNTER.reset(counter_token)
        _LIMITS.reset(limits_token)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = (
    "the text contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is not valid Unicode; "
    "send valid UTF-8 text"
)
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def _rejection(text: str, limits: BodyLimits) -> BodyRejected:
    match = _PATH.search(text)
    path = (match.group("path") if match else "").replace("[", ".").replace("]", "")
    detail = text[: match.start()] if match else text
    if "__too_many__" in detail:
        field = path.split(".", 1)[0] or "items"
        return BodyRejected(
            ErrorType.TOO_LARGE,
            f"more than {limits.max_items} {field} in one request: the limit is {limits.max_items} "
            "(--max-items-per-request); split it",
        )
    if not path and detail.startswith("Expected `object`"):
        return BodyRejected(ErrorType.MALFORMED_REQUEST, "the request body must be a JSON object")
    return BodyRejected(ErrorType.INVALID_REQUEST, f"{path or 'body'}: {detail[:1].lower()}{detail[1:]}")


def _options(model: type[BaseModel], shape: Any) -> dict[str, Any]:
    options = {}
    for name in model.model_fields:
        value = getattr(shape, name, msgspec.UNSET)
        if name == "items" or value is msgspec.UNSET:
            continue
        if len(value) > MAX_OPTION_BYTES:
            raise BodyRejected(ErrorType.INVALID_REQUEST, f"{name}: the value is longer than {MAX_OPTION_BYTES} bytes")
        options[name] = json.loads(bytes(value))
    return options


def _validated_item(index: int, item: Any, limits: BodyLimits) -> Any:
    fields: dict[str, Any] = {}
    for name in _Item.__struct_fields__:
        value = getattr(item, name)
        if value is msgspec.UNSET:
            continue
        if name.endswith("_ids"):
            value = _decode_ids(index, name, bytes(value), limits)
        elif name == "messages":
            value = [{"role": m.role, "content": m.content} for m in value]
        fields[name] = value
    try:
        return _ITEM.validate_python(fields)
    except ValidationError as exc:
        raise BodyRejected(ErrorType.INVALID_REQUEST, _describe(exc, prefix=f"items.{index}")) from None


def _decode_ids(index: int, name: str, raw: bytes, limits: BodyLimits) -> list[int]:
    # A valid list of n ids has exactly n - 1 commas: counting them bounds the list before it is decoded.
    if raw.count(b",") >= limits.max_ids_per_list:
        raise BodyRejected(
            ErrorType.INVALID_REQUEST,
            f"items.{index}.{name}: more than {limits.max_ids_per_list} ids exceed the limit per item "
            "(--max-item-chars); no item that long can fit the model's token limit",
        )
    try:
        return _IDS_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        element = match.group("path").strip("[]") if match else ""
        where = f"items.{index}.{name}" + (f".{element}" if element else "")
        raise BodyRejected(ErrorType.INVALID_REQUEST, f"{where}: ids must be non-negative integers") from None


def _validated(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyRejected(ErrorType.INVALID_REQUEST, _describe(exc)) from None


def _describe(exc: ValidationError, prefix: str = "") -> str:
    """The first few errors, each as ``where: what`` (the union's form tags are left out of the path)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        loc = [str(x) for x in error.get("loc", ()) if x not in wire.ITEM_FORMS]
        where = ".".join([prefix, *loc] if prefix else loc)
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    more = exc.error_count() - MAX_REPORTED_ERRORS
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
