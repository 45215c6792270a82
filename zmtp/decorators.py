"""pyzmq's ``zmq.decorators``: run a function with a Context or a Socket
made for the call and closed after it (``with`` as a decorator)::

    from zmtp.decorators import context, socket

    @context()
    @socket(zmtp.PUSH)
    def work(ctx, push):
        push.connect("tcp://127.0.0.1:5555")
        push.send(b"job")

Each decorator's first positional argument, when a str (or its ``name=``
keyword), names the keyword argument the object is passed as; otherwise
the object is appended to the positional arguments.  The other arguments
go to the factory: ``zmtp.Context(...)``, or ``ctx.socket(...)``.  The
socket's context is the call's ``context=`` keyword argument (another name
with ``context_name=``) when it is a Context, else the first Context among
the positional arguments, else ``Context.instance()``.

Layering: imports ``zmtp.context``; nothing in zmtp imports it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

from zmtp.context import Context

__all__ = ["context", "socket"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _split_name(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Optional[str], Tuple[Any, ...]]:
    """The keyword name the object is passed as (``name=`` or a leading
    str), and the factory's positional arguments without it."""
    if isinstance(kwargs.get("name"), str):
        return kwargs.pop("name"), args
    if args and isinstance(args[0], str):
        return args[0], args[1:]
    return None, args


def _decorate(make: Callable[[Tuple[Any, ...], Dict[str, Any]], Any], name: Optional[str]) -> Callable[[_F], _F]:
    """A decorator calling the function with ``make(call_args, call_kwargs)``
    entered as a context manager, passed as keyword ``name`` or last."""

    def decorator(func: _F) -> _F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name is not None and name in kwargs:
                raise TypeError(f"{func.__name__}() got multiple values for argument '{name}'")
            with make(args, kwargs) as obj:
                if name is None:
                    return func(*args, obj, **kwargs)
                return func(*args, **{**kwargs, name: obj})

        return wrapper  # type: ignore[return-value]

    return decorator


def context(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Decorator: call the function with a new ``zmtp.Context(*args,
    **kwargs)``, terminated when the function returns.  ``name`` (or a
    leading str) passes it as that keyword argument."""
    name, args = _split_name(args, kwargs)
    return _decorate(lambda _a, _k: Context(*args, **kwargs), name)


def socket(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Decorator: call the function with a new socket, ``ctx.socket(*args,
    **kwargs)``, closed when the function returns.  ``name`` (or a leading
    str) passes it as that keyword argument; ``context_name`` (default
    "context") is the keyword argument holding the Context to use."""
    name, args = _split_name(args, kwargs)
    context_name = kwargs.pop("context_name", "context")

    def make(call_args: Tuple[Any, ...], call_kwargs: Dict[str, Any]) -> Any:
        ctx = call_kwargs.get(context_name)
        if not isinstance(ctx, Context):
            ctx = next((a for a in call_args if isinstance(a, Context)), None) or Context.instance()
        return ctx.socket(*args, **kwargs)

    return _decorate(make, name)
