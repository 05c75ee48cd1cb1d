"""Old names that keep working for one release (0.2.x), each with a ``DeprecationWarning`` that
names its replacement. CHANGELOG.md lists every one; each is removed in 0.3."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

REMOVED_IN = "0.3"


def warn(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is deprecated since 0.2 and will be removed in {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_keyword(kwargs: dict[str, Any], old: str, new: str, where: str, *, inverse: bool = False) -> None:
    """Move ``kwargs[old]`` to ``kwargs[new]`` with a warning (negated, for a flag whose new name
    means the opposite); both given is an error."""
    if old not in kwargs:
        return
    kind = "deprecated inverse" if inverse else "deprecated name"
    if new in kwargs:
        raise TypeError(f"{where}: pass {new}= only ({old}= is its {kind}), got both")
    warn(f"{where}({old}=...)", f"{new}=" + (" (its inverse)" if inverse else ""), stacklevel=4)
    value = kwargs.pop(old)
    kwargs[new] = not value if inverse else value


def renamed_keywords(*, inverted: tuple[str, ...] = (), **old_to_new: str) -> Callable[[F], F]:
    """Accept, with a warning, the 0.1 names of keyword arguments: ``old=new``; the old names in
    ``inverted`` meant the opposite of the new ones (``teacher_differentiable`` → ``detach_teacher``)."""

    def decorate(fn: F) -> F:
        where = fn.__qualname__.replace(".__init__", "").replace(".forward", "")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                renamed_keyword(kwargs, old, new, where, inverse=old in inverted)
            return fn(*args, **kwargs)

        wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def keyword_only(*names: str) -> Callable[[F], F]:
    """Accept, with a warning, the positional use of ``names`` (hyperparameters that became
    keyword-only in 0.2), in the order 0.1 took them after the arguments that stay positional."""

    def decorate(fn: F) -> F:
        positional = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extra = args[len(positional) :]
            if extra:
                if len(extra) > len(names):
                    raise TypeError(
                        f"{fn.__qualname__} takes at most {len(positional) + len(names)} positional "
                        f"arguments, got {len(args)}"
                    )
                moved = names[: len(extra)]
                for name in moved:
                    if name in kwargs:
                        raise TypeError(f"{fn.__qualname__} got multiple values for argument {name!r}")
                warn(
                    f"passing {', '.join(moved)} to {fn.__qualname__.split('.')[0]} by position",
                    "keyword arguments (" + ", ".join(f"{n}=" for n in moved) + ")",
                )
                kwargs.update(zip(moved, extra))
                args = args[: len(positional)]
            return fn(*args, **kwargs)

        wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def module_getattr(module: str, aliases: dict[str, tuple[str, Callable[[], Any]]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving deprecated names: ``aliases[old] = (new name, getter)``."""

    def __getattr__(name: str) -> Any:
        if name in aliases:
            new, get = aliases[name]
            warn(f"{module}.{name}", new)
            return get()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
