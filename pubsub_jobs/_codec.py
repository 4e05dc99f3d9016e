"""Arguments to and from JSON, driven by the job function's type hints (pydantic)."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from pubsub_jobs.errors import InvalidArguments, JobDefinitionError

_ANY: TypeAdapter[Any] = TypeAdapter(Any)

_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POS_OR_KW = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
_POSITIONAL = (_POSITIONAL_ONLY, _POS_OR_KW)

#: Hints whose values of exactly these types pydantic validates and dumps unchanged, so the
#: codec passes them through without calling it (a third of an enqueue's encoding time).
_PASSTHROUGH: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    bool: (bool,),
    float: (float,),
    Any: (str, int, bool, float, type(None)),
}


def _passthrough(hint: Any) -> tuple[type, ...]:
    try:
        return _PASSTHROUGH.get(hint, ())
    except TypeError:  # an unhashable hint (e.g. Annotated with a list in it)
        return ()


def _plain_value(value: Any) -> bool:
    """Not a float that JSON cannot hold (pydantic turns those into null for ``Any``)."""
    return type(value) is not float or math.isfinite(value)


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
        self._passthrough: dict[str, tuple[type, ...]] = {}
        params = list(self.signature.parameters.values())
        self._params = [(p.name, p.kind) for p in params]
        #: Without ``*args``/``**kwargs``, :meth:`_bind` skips ``Signature.bind`` for valid calls.
        self._plain = not any(p.kind in (_VAR_POSITIONAL, _VAR_KEYWORD) for p in params)
        self._positional = [p.name for p in params if p.kind in _POSITIONAL]
        self._keywords = {p.name for p in params if p.kind in (_POS_OR_KW, _KEYWORD_ONLY)}
        self._required = {p.name for p in params if p.default is inspect.Parameter.empty}
        self._keyword_only = {p.name for p in params if p.kind is _KEYWORD_ONLY}
        self._required_keyword_only = [n for n in self._keyword_only if n in self._required]
        #: For :meth:`_unchanged`: the types each positional parameter passes through.
        self._positional_types: list[tuple[type, ...]] = []
        #: The worker's hot path: every tuple of argument types (no keywords, no float) that
        #: :meth:`_unchanged` passes, when there are few; one set lookup decides then.
        self._unchanged_types: frozenset[tuple[type, ...]] = frozenset()

    @property
    def adapters(self) -> dict[str, TypeAdapter[Any]]:
        if self._adapters is None:
            try:
                hints = typing.get_type_hints(self._fn, include_extras=True)
            except Exception as exc:
                raise JobDefinitionError(
                    f"cannot resolve the type hints of {self._label}: {exc}"
                ) from exc
            self._passthrough = {
                name: _passthrough(hints.get(name, Any)) for name in self.signature.parameters
            }
            self._adapters = {
                name: TypeAdapter(hints[name]) if name in hints else _ANY
                for name in self.signature.parameters
            }
            self._positional_types = [self._passthrough[name] for name in self._positional]
            self._unchanged_types = self._plain_type_tuples()
        return self._adapters

    def _plain_type_tuples(self) -> frozenset[tuple[type, ...]]:
        # Every positional parameter given, no keyword-only one required, and at most 64
        # combinations (a float must still be checked for finiteness: left out).
        if not self._plain or self._required_keyword_only:
            return frozenset()
        choices = [tuple(t for t in types if t is not float) for types in self._positional_types]
        if math.prod(len(c) for c in choices) > 64:
            return frozenset()
        return frozenset(itertools.product(*choices))

    def _bind(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], list[str]]:
        """The given arguments by parameter name, as ``Signature.bind`` has them (no defaults),
        and what is wrong with the call: unknown keywords, missing arguments.

        A valid call of a function without ``*args``/``**kwargs`` is bound here directly
        (``Signature.bind`` costs more than the rest of an enqueue's encoding); anything
        else, errors included, goes through ``Signature.bind_partial``.
        """
        if self._plain and len(args) <= len(self._positional):
            bound = dict(zip(self._positional, args, strict=False))
            for name, value in kwargs.items():
                if name in bound or name not in self._keywords:
                    break
                bound[name] = value
            else:
                if self._required.issubset(bound):
                    return bound, []
        problems = []
        suggested: set[str] = set()  # a misspelling's suggestion is not named missing too
        if not any(kind is _VAR_KEYWORD for _, kind in self._params):
            unknown = [name for name in kwargs if name not in self._keywords]
            if unknown:
                import difflib  # for this error only: not on every process's start

            for name in unknown:
                close = difflib.get_close_matches(name, sorted(self._keywords), n=1)
                suggested.update(close)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unexpected keyword argument {name!r}{hint}")
            kwargs = {name: value for name, value in kwargs.items() if name not in unknown}
        try:
            arguments = self.signature.bind_partial(*args, **kwargs).arguments
        except TypeError as exc:  # too many positional arguments, one given twice
            raise InvalidArguments(f"{self._label}: " + "; ".join([*problems, str(exc)])
                                   ) from None
        problems += [f"missing a required argument: {name!r}" for name, kind in self._params
                     if name in self._required and name not in arguments
                     and name not in suggested and kind not in (_VAR_POSITIONAL, _VAR_KEYWORD)]
        return arguments, problems

    def _checked(self, args: Sequence[Any], kwargs: Mapping[str, Any],
                 convert: Callable[[str, Any], Any]) -> tuple[list[Any], dict[str, Any]]:
        """Bind and convert; one :class:`InvalidArguments` names every problem of the call."""
        bound, problems = self._bind(args, kwargs)
        try:
            converted = self._convert(bound, convert)
        except InvalidArguments as exc:
            problems.append(str(exc).removeprefix(f"{self._label}: "))
        if problems:
            raise InvalidArguments(f"{self._label}: " + "; ".join(problems))
        return converted

    def encode(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """JSON-ready ``(args, kwargs)``; :class:`InvalidArguments` names the bad argument."""
        return self._checked(args, kwargs, self._encode_one)

    def decode(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Python ``(args, kwargs)`` rebuilt in the hinted types."""
        if not kwargs and tuple(map(type, args)) in self._unchanged_types:
            return list(args), {}
        if self._unchanged(args, kwargs):
            return list(args), dict(kwargs)
        return self._checked(args, kwargs, self._decode_one)

    def _unchanged(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """Whether decoding would return the arguments as they are: every positional
        parameter given positionally, keyword-only ones by keyword, every required one given,
        and each value of a type its hint passes through (a str for a str, ...). The worker's
        hot path: most jobs take ids and strings, and this costs a tenth of :meth:`_convert`."""
        if self._adapters is None:
            self.adapters  # noqa: B018 - resolves the hints, and the passthrough types
        types = self._positional_types
        if not self._plain or len(args) != len(types):
            return False
        for value, allowed in zip(args, types, strict=True):
            kind = type(value)
            if kind not in allowed or (kind is float and not math.isfinite(value)):
                return False
        if kwargs:
            passthrough, keyword_only = self._passthrough, self._keyword_only
            for name, value in kwargs.items():
                kind = type(value)
                if (name not in keyword_only or kind not in passthrough[name]
                        or (kind is float and not math.isfinite(value))):
                    return False
        required = self._required_keyword_only
        return not required or all(name in kwargs for name in required)

    def _convert(
        self, bound: Mapping[str, Any], convert: Callable[[str, Any], Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Positional arguments stay positional up to the first one left out (its default
        applies); from there on, and for keyword-only ones, arguments go by keyword."""
        out_args: list[Any] = []
        out_kwargs: dict[str, Any] = {}
        errors: list[str] = []
        positional = True
        for name, kind in self._params:
            if name not in bound:
                if kind in _POSITIONAL:
                    positional = False
                continue
            value = bound[name]
            try:
                if kind is _VAR_POSITIONAL:
                    out_args.extend(convert(name, item) for item in value)
                elif kind is _VAR_KEYWORD:
                    positional = False
                    out_kwargs.update({key: convert(name, item) for key, item in value.items()})
                elif kind is _KEYWORD_ONLY or not positional:
                    positional = False
                    out_kwargs[name] = convert(name, value)
                else:
                    out_args.append(convert(name, value))
            except InvalidArguments as exc:  # go on: every bad argument is named at once
                errors.append(str(exc).removeprefix(f"{self._label}: "))
        if errors:
            raise InvalidArguments(f"{self._label}: " + "; ".join(errors))
        return out_args, out_kwargs

    def encode_argument(self, name: str, value: Any) -> Any:
        """One argument as JSON, from its hint (an iterating job's ``cursor``)."""
        return self._encode_one(name, value)

    def _encode_one(self, name: str, value: Any) -> Any:
        adapter = self.adapters[name]
        if type(value) in self._passthrough[name] and _plain_value(value):
            return value  # a str for a str, an int for an int...: pydantic returns it as is
        try:
            validated = adapter.validate_python(value)
            if _non_finite(validated):
                raise InvalidArguments(
                    f"{self._label}: argument {name!r} holds NaN or Infinity, which JSON "
                    "cannot carry (other languages' consumers reject it, and pydantic would "
                    "write null): pass a finite number, None, or a string"
                )
            return adapter.dump_python(validated, mode="json")
        except InvalidArguments:
            raise
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
        adapter = self.adapters[name]
        if type(value) in self._passthrough[name] and _plain_value(value):
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidArguments(
                f"{self._label}: argument {name!r} is invalid: {_errors(exc)}"
            ) from None
        except Exception as exc:  # a validator may raise anything, not only ValueError
            raise InvalidArguments(
                f"{self._label}: argument {name!r} is invalid: {type(exc).__name__}: {exc}"
            ) from None


def _non_finite(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a NaN or an infinite float, in containers, dataclasses and
    pydantic models too (deeper than 64 levels is not looked at: pydantic refuses it)."""
    if type(value) is float:
        return not math.isfinite(value)
    if depth > 64 or isinstance(value, str | bytes | int | bool) or value is None:
        return False
    if isinstance(value, Mapping):
        return any(_non_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_non_finite(v, depth + 1) for v in value)
    if isinstance(value, float):  # a float subclass
        return not math.isfinite(value)
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict) and (
        dataclasses.is_dataclass(value) or hasattr(type(value), "model_fields")
    ):
        return any(_non_finite(v, depth + 1) for v in fields.values())
    return False


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where + ': ' if where else ''}{error['msg']} (got {error['input']!r:.80})")
    return "; ".join(parts)
