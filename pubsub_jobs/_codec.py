"""Arguments to and from JSON, driven by the job function's type hints (pydantic)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from pubsub_jobs.errors import InvalidArguments, JobDefinitionError

_ANY: TypeAdapter[Any] = TypeAdapter(Any)


class ArgumentCodec:
    """Validates and encodes a call's arguments, and decodes them back into their types.

    Type adapters are built on first use, so hints may name classes defined later in the
    module (forward references).
    """

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        self._fn = fn
        self._label = label
        self.signature = inspect.signature(fn)
        self._adapters: dict[str, TypeAdapter[Any]] | None = None

    @property
    def adapters(self) -> dict[str, TypeAdapter[Any]]:
        if self._adapters is None:
            try:
                hints = typing.get_type_hints(self._fn, include_extras=True)
            except Exception as exc:
                raise JobDefinitionError(
                    f"cannot resolve the type hints of {self._label}: {exc}"
                ) from exc
            self._adapters = {
                name: TypeAdapter(hints[name]) if name in hints else _ANY
                for name in self.signature.parameters
            }
        return self._adapters

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"{self._label}: {exc}") from None

    def encode(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """JSON-ready ``(args, kwargs)``; :class:`InvalidArguments` names the bad argument."""
        bound = self._bind(args, kwargs)
        return self._convert(bound, self._encode_one)

    def decode(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Python ``(args, kwargs)`` rebuilt in the hinted types."""
        bound = self._bind(args, kwargs)
        return self._convert(bound, self._decode_one)

    def _convert(
        self, bound: inspect.BoundArguments, convert: Callable[[str, Any], Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        params = self.signature.parameters
        out_args: list[Any] = []
        out_kwargs: dict[str, Any] = {}
        positional = True
        for name, value in bound.arguments.items():
            kind = params[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                out_args.extend(convert(name, item) for item in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                positional = False
                out_kwargs.update({key: convert(name, item) for key, item in value.items()})
            elif kind is inspect.Parameter.KEYWORD_ONLY or not positional:
                positional = False
                out_kwargs[name] = convert(name, value)
            else:
                out_args.append(convert(name, value))
        return out_args, out_kwargs

    def _encode_one(self, name: str, value: Any) -> Any:
        adapter = self.adapters[name]
        try:
            return adapter.dump_python(adapter.validate_python(value), mode="json")
        except ValidationError as exc:
            raise InvalidArguments(
                f"{self._label}: argument {name!r} is invalid: {_errors(exc)}"
            ) from None
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise InvalidArguments(
                f"{self._label}: argument {name!r} ({type(value).__name__}) cannot be encoded "
                f"as JSON: {exc}. Annotate the parameter with a type pydantic can serialize "
                "(a pydantic model, dataclass, datetime, UUID, ...) or pass an id instead."
            ) from None

    def _decode_one(self, name: str, value: Any) -> Any:
        try:
            return self.adapters[name].validate_python(value)
        except ValidationError as exc:
            raise InvalidArguments(
                f"{self._label}: argument {name!r} is invalid: {_errors(exc)}"
            ) from None


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where + ': ' if where else ''}{error['msg']} (got {error['input']!r:.80})")
    return "; ".join(parts)
