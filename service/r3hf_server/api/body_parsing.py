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

Steps 1-2 (``decode_body``) and step 3 (``build_request``) are separate calls because a body's parsed form can be far
larger than its bytes: a 26-byte chat message ``{"role":"u","content":""}`` becomes ~540 bytes of objects, a 7-byte
token id ~40. ``decode_body`` counts messages and ids and reports the parsed form's cost (``DecodedBody.parsed_cost``)
so the intake can hold that much of the in-flight budget before ``build_request`` builds it. While decoding, chat
messages are counted as they arrive: an item whose messages exceed the per-item size, or a request whose messages
alone would exceed the whole budget, stops the decode there.

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
    max_item_size: int  # characters (text, chat) or ids per list, as --max-item-chars counts them
    max_parsed_bytes: int  # the whole in-flight budget: a request whose parsed form exceeds it can never be held


# Bytes of Python objects per parsed element, measured with tracemalloc on the built request model (544 per message,
# 41 per 6-digit id) plus the engine's tuples made from them; text costs about its own bytes.
MESSAGE_COST = 640
ID_COST = 56


class _Tally:
    """Counts for one decode: items, and chat messages with the characters of the item being decoded."""

    __slots__ = ("limits", "items", "messages", "item_size")

    def __init__(self, limits: BodyLimits) -> None:
        self.limits, self.items, self.messages, self.item_size = limits, 0, 0, 0

    def count_item(self) -> None:
        """Called as each item is decoded: past the cap the decode stops here, before the rest is built."""
        self.items += 1
        self.item_size = 0  # an item's messages are decoded before the item itself: the next item starts from 0
        if self.items > self.limits.max_items:
            raise ValueError(f"__too_many__ more than {self.limits.max_items} items")

    def count_message(self, size: int) -> None:
        self.messages += 1
        self.item_size += size
        if self.item_size > self.limits.max_item_size:
            raise ValueError("__item_too_long__")
        if self.messages * MESSAGE_COST > self.limits.max_parsed_bytes:
            raise ValueError("__too_costly__")


_TALLY: contextvars.ContextVar[_Tally] = contextvars.ContextVar("r3hf_body_tally")


def _count_one() -> None:
    _TALLY.get().count_item()


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):  # no cycles: strings only
    role: str
    content: str

    def __post_init__(self) -> None:
        _TALLY.get().count_message(len(self.role) + len(self.content) + 1)  # as ChatInput.size() counts it


class _Item(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
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


@dataclass(frozen=True)
class DecodedBody:
    """A body decoded to its shape (``decode_body``), with what building the request from it will cost."""

    model: type[BaseModel]
    shape: Any
    body_bytes: int
    messages: int
    ids: int

    @property
    def parsed_cost(self) -> int:
        """Bytes the built request holds: its text (about the body) plus the objects made per message and id."""
        return self.body_bytes + self.messages * MESSAGE_COST + self.ids * ID_COST


def parse_body(model: type[BaseModel], raw: bytes, limits: BodyLimits) -> BaseModel:
    """The request model for ``raw``, or BodyRejected; memory and time stay a small multiple of ``len(raw)``."""
    return build_request(decode_body(model, raw, limits), limits)


def decode_body(model: type[BaseModel], raw: bytes, limits: BodyLimits) -> DecodedBody:
    """Decode to the request's shape and count what building it will make; ids stay undecoded byte slices."""
    tally = _Tally(limits)
    token = _TALLY.set(tally)
    try:
        shape = _DECODERS[model].decode(raw)
    except msgspec.ValidationError as exc:
        raise _rejection(str(exc), limits) from None
    except msgspec.DecodeError as exc:
        if _SURROGATE_ESCAPE.search(raw):  # msgspec refuses a lone surrogate with a misleading message
            raise BodyRejected(ErrorType.INVALID_REQUEST, _LONE_SURROGATE) from None
        raise BodyRejected(ErrorType.MALFORMED_REQUEST, f"the request body is not valid JSON: {exc}") from None
    finally:
        _TALLY.reset(token)
    ids = sum(_count_ids(index, item, limits) for index, item in enumerate(getattr(shape, "items", ())))
    decoded = DecodedBody(model, shape, len(raw), tally.messages, ids)
    if decoded.parsed_cost > limits.max_parsed_bytes:
        raise _too_costly(limits, _mib(decoded.parsed_cost))
    return decoded


def build_request(decoded: DecodedBody, limits: BodyLimits) -> BaseModel:
    model, shape = decoded.model, decoded.shape
    if model is OpenRLHFRequest:
        return _validated(model, {"query": shape.query, "prompts": shape.prompts})
    if model is SlimeRequest:
        return _validated(model, {"prompt": shape.prompt, "response": shape.response})
    items = [_validated_item(index, item) for index, item in enumerate(shape.items)]
    return _validated(model, {**_options(model, shape), "items": items})


def _count_ids(index: int, item: Any, limits: BodyLimits) -> int:
    # A valid list of n ids has exactly n - 1 commas: counting them (a C-speed scan) bounds the list before it is
    # decoded. An empty list counts as one id: a bound, not an exact count.
    total = 0
    for name in ("prompt_ids", "response_ids"):
        raw = getattr(item, name)
        if raw is msgspec.UNSET:
            continue
        count = bytes(raw).count(b",") + 1
        if count > limits.max_item_size:
            raise BodyRejected(
                ErrorType.INVALID_REQUEST,
                f"items.{index}.{name}: more than {limits.max_item_size} ids exceed the limit per item "
                "(--max-item-chars); no item that long can fit the model's token limit",
            )
        total += count
    return total


def _too_costly(limits: BodyLimits, taken: str) -> BodyRejected:
    """``taken``: the parsed size, or (when the decode stopped early) a lower bound of it."""
    return BodyRejected(
        ErrorType.TOO_LARGE,
        f"the request's chat messages and token ids take {taken} once parsed (each message about {MESSAGE_COST} "
        f"bytes, each id {ID_COST}); the server holds at most {_mib(limits.max_parsed_bytes)} of request bodies in "
        "flight (--max-inflight-body-bytes); split it",
    )


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB" if count >= 1 << 20 else f"{count} bytes"


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
    if "__item_too_long__" in detail:
        item = ".".join(path.split(".")[:2])
        return BodyRejected(
            ErrorType.INVALID_REQUEST,
            f"{item}.messages: more than {limits.max_item_size} characters (each message counts its role, content "
            "and 1) exceed the limit per item (--max-item-chars); no item that long can fit the model's token limit",
        )
    if "__too_costly__" in detail:  # the messages alone passed the budget: the decode stopped there
        return _too_costly(limits, f"more than {_mib(limits.max_parsed_bytes)}")
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


def _validated_item(index: int, item: Any) -> Any:
    fields: dict[str, Any] = {}
    for name in _Item.__struct_fields__:
        value = getattr(item, name)
        if value is msgspec.UNSET:
            continue
        if name.endswith("_ids"):
            value = _decode_ids(index, name, bytes(value))
        elif name == "messages":
            value = [{"role": m.role, "content": m.content} for m in value]
        fields[name] = value
    try:
        return _ITEM.validate_python(fields)
    except ValidationError as exc:
        raise BodyRejected(ErrorType.INVALID_REQUEST, _describe(exc, prefix=f"items.{index}")) from None


def _decode_ids(index: int, name: str, raw: bytes) -> list[int]:
    try:  # already bounded by _count_ids
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
