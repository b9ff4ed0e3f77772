"""The switch wrapper of ``@profiled``: the function itself while stopped, the timed one while running.

For plain Python functions the wrapper is compiled with the function's own parameter list, because
forwarding ``*args, **kwargs`` costs more than the whole 200 ns budget of the stopped path (packing a tuple
and a dict, then a call through ``CALL_FUNCTION_EX``). Other callables get a generic ``*args, **kwargs`` one.

What reaches ``compile``/``exec``, and why it is safe:

- The source is a fixed template; the only text in it that comes from outside this module is parameter
  names, read from the function's code object through :func:`inspect.signature`. A code object can be
  built by hand with any strings as names (``code.replace(co_varnames=...)``), so each name is checked
  here, not trusted: a plain identifier (:meth:`str.isidentifier`), not a keyword, not ``__debug__``,
  already in NFKC form (the parser normalises identifiers, so a name like ``"ﬁle"`` would silently become
  ``file`` in the compiled wrapper), and not starting with the reserved ``_bt_`` prefix.
- Default values never become source text (no ``repr``, no ``eval``): each is bound in the exec namespace
  under a slot name (``_bt_default_<name>``) and the parameter list refers to that slot, so the wrapper's
  default is the very object the function has.
- After compiling, the wrapper's parameters are compared with the function's own (names, counts, ``*``
  and ``**``); any mismatch, or a name that fails a check, gets the generic wrapper instead. The
  generated code runs in a fresh namespace holding only the slots, the three reserved names and
  ``__builtins__``.

One consequence of binding defaults at decoration time: reassigning ``func.__defaults__`` afterwards does
not reach the compiled wrapper (which passes the old defaults explicitly); decorate after such surgery.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import types
import unicodedata
from collections.abc import Callable
from inspect import Parameter
from typing import Any, ParamSpec, Protocol, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")

_RESERVED_PREFIX = "_bt_"
_ARGUMENT_FLAGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


class _Switchable(Protocol):
    """What the wrapper reads on every call: whether recording is on (a :class:`Profiler`)."""

    _running: bool


def make_switch(
    func: Callable[P, R],
    timed: Callable[P, R],
    profiler: _Switchable,
    *,
    is_async: bool,
    label: str,
) -> Callable[P, R]:
    """The public wrapper around ``func``: ``timed`` while ``profiler._running``, else ``func`` itself.

    ``label`` names the generated code in tracebacks (``<profiled label>``); it is a file name, never code.
    """
    wrapper = _generated_switch(func, timed, profiler, is_async=is_async, label=label)
    if wrapper is None:
        wrapper = (
            _generic_async_switch(func, timed, profiler)
            if is_async
            else _generic_switch(func, timed, profiler)
        )
    return cast("Callable[P, R]", functools.wraps(func)(wrapper))


def _generic_switch(func: Callable[P, R], timed: Callable[P, R], profiler: _Switchable) -> Callable[P, R]:
    def switch(*args: P.args, **kwargs: P.kwargs) -> R:
        if profiler._running:
            return timed(*args, **kwargs)
        return func(*args, **kwargs)

    return switch


def _generic_async_switch(
    func: Callable[..., Any], timed: Callable[..., Any], profiler: _Switchable
) -> Callable[..., Any]:
    async def switch(*args: Any, **kwargs: Any) -> Any:
        if profiler._running:
            return await timed(*args, **kwargs)
        return await func(*args, **kwargs)

    return switch


def _generated_switch(
    func: Callable[..., Any], timed: Callable[..., Any], profiler: _Switchable, *, is_async: bool, label: str
) -> Callable[..., Any] | None:
    """Compile ``def switch(<func's parameters>)`` forwarding each parameter by name; None if not possible."""
    if type(func) is not types.FunctionType or hasattr(func, "__signature__"):
        return None  # only a plain function's own code object tells its true parameters
    try:
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):  # e.g. a hand-built code object whose names inspect refuses
        return None
    forwarding = _parameter_lists(signature)
    if forwarding is None:
        return None
    definition, call, namespace = forwarding
    define, wait = ("async def", "await ") if is_async else ("def", "")
    source = (
        f"{define} switch({definition}):\n"
        f"    if {_RESERVED_PREFIX}profiler._running:\n"
        f"        return {wait}{_RESERVED_PREFIX}timed({call})\n"
        f"    return {wait}{_RESERVED_PREFIX}func({call})\n"
    )
    namespace[f"{_RESERVED_PREFIX}profiler"] = profiler
    namespace[f"{_RESERVED_PREFIX}timed"] = timed
    namespace[f"{_RESERVED_PREFIX}func"] = func
    try:
        code = compile(source, f"<profiled {label}>", "exec")
    except SyntaxError:  # pragma: no cover - defensive: every name was checked above
        return None
    # Safe: the source is the template above plus names that passed _is_plain_name (see module docstring).
    exec(code, namespace)  # noqa: S102
    generated = cast("types.FunctionType", namespace["switch"])
    return generated if _same_parameters(generated.__code__, func.__code__) else None


def _parameter_lists(signature: inspect.Signature) -> tuple[str, str, dict[str, Any]] | None:
    """The parameter list, the call arguments and the default values (by slot name) to forward a call.

    None when a name is not a plain identifier: the caller then uses the generic wrapper.
    """
    definition: list[str] = []
    call: list[str] = []
    defaults: dict[str, Any] = {}
    previous: Any = None
    for parameter in signature.parameters.values():
        name, kind = parameter.name, parameter.kind
        if not _is_plain_name(name):
            return None
        if previous is Parameter.POSITIONAL_ONLY and kind is not previous:
            definition.append("/")
        if kind is Parameter.KEYWORD_ONLY and previous not in (
            Parameter.VAR_POSITIONAL,
            Parameter.KEYWORD_ONLY,
        ):
            definition.append("*")
        spelled = _spelled(name, kind)
        if parameter.default is Parameter.empty:
            definition.append(spelled)
        else:
            slot = f"{_RESERVED_PREFIX}default_{name}"
            defaults[slot] = parameter.default  # by reference: the value never becomes source text
            definition.append(f"{name}={slot}")
        call.append(f"{name}={name}" if kind is Parameter.KEYWORD_ONLY else spelled)
        previous = kind
    if previous is Parameter.POSITIONAL_ONLY:
        definition.append("/")
    return ", ".join(definition), ", ".join(call), defaults


def _is_plain_name(name: object) -> bool:
    """Whether ``name`` can be written into the wrapper's source and reads back as exactly itself."""
    return (
        type(name) is str
        and name.isidentifier()
        and not keyword.iskeyword(name)
        and name != "__debug__"  # an identifier, but not one a parameter may have
        and unicodedata.normalize("NFKC", name) == name
        and not name.startswith(_RESERVED_PREFIX)
    )


def _spelled(name: str, kind: Any) -> str:
    if kind is Parameter.VAR_POSITIONAL:
        return f"*{name}"
    if kind is Parameter.VAR_KEYWORD:
        return f"**{name}"
    return name


def _same_parameters(generated: types.CodeType, original: types.CodeType) -> bool:
    """Whether the compiled wrapper takes exactly the parameters of the function it forwards to."""
    count = original.co_argcount + original.co_kwonlyargcount
    count += bin(original.co_flags & _ARGUMENT_FLAGS).count("1")
    return (
        generated.co_argcount == original.co_argcount
        and generated.co_posonlyargcount == original.co_posonlyargcount
        and generated.co_kwonlyargcount == original.co_kwonlyargcount
        and generated.co_flags & _ARGUMENT_FLAGS == original.co_flags & _ARGUMENT_FLAGS
        and generated.co_varnames[:count] == original.co_varnames[:count]
    )
