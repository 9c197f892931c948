"""The subset of OpenAI's chat completions API the proxy speaks, as pydantic models.

Requests are validated here rather than by FastAPI so that every problem becomes an OpenAI-style
400 naming the parameter. Fields that OpenAI clients commonly send but that do not change the
answer (penalties, ``logit_bias``, ``metadata``, ...) are accepted and ignored; features the proxy
cannot honour (``n > 1``, tools, structured output, logprobs) are refused rather than silently
dropped. The ``gtalign`` field is the proxy's extension: a per-request pricing policy and welfare
rule.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChunkChoice",
    "Delta",
    "ErrorBody",
    "ErrorDetail",
    "GtalignOptions",
    "ModelCard",
    "ModelList",
    "ResponseMessage",
    "StreamOptions",
    "Usage",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessage(BaseModel):
    """One message of the conversation. ``developer`` is OpenAI's newer name for ``system``.

    ``content`` is a string or a list of text parts (``{"type": "text", "text": ...}``), joined
    into one string here; other parts (images, audio) are refused, since the model reads text.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str = ""
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if not isinstance(value, list):
            if not isinstance(value, str):
                raise ValueError("content must be a string or a list of text parts")
            return value
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"only text content parts ({{'type': 'text', 'text': ...}}) are supported, got {kind!r}")
            texts.append(part["text"])
        return "".join(texts)

    def as_plain(self) -> dict[str, str]:
        """The ``{"role", "content"}`` form backends take."""
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.content}


class GtalignOptions(_Strict):
    """The proxy's request extension: choose the pricing policy, the welfare rule and the
    constrained decoding (``off``, ``auto``, ``on``) of this request."""

    pricing: str | None = None
    rule: str | None = None
    constrain: Literal["off", "auto", "on"] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. ``max_completion_tokens`` wins over ``max_tokens``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    n: int | None = Field(default=None, ge=1)
    gtalign: GtalignOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return value

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def unsupported(self) -> tuple[str, str] | None:
        """(parameter, why) for the first feature asked for that the proxy cannot honour."""
        extra: dict[str, Any] = self.model_extra or {}
        if self.n not in (None, 1):
            return "n", "the proxy returns one choice per request; n must be 1"
        for name in ("tools", "functions"):
            if extra.get(name):
                return name, f"'{name}' is not supported: the proxy answers with the steered response text only"
        if extra.get("tool_choice") not in (None, "none"):
            return "tool_choice", "'tool_choice' is not supported (only 'none')"
        response_format = extra.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
            return "response_format", "only the 'text' response format is supported"
        if extra.get("logprobs"):
            return "logprobs", "logprobs are not supported"
        return None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    """The answer; ``gtalign`` carries the game record (blocks, matrices, choice, stages)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    gtalign: dict[str, Any]


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event; the final one (with ``finish_reason``) also carries ``gtalign``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    gtalign: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "gtalign"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
