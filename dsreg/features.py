"""Feature schema: what each column of a dataset holds.

Light descriptions (no torch, numpy or datasets at import time) that the prepared store turns
into Hugging Face ``datasets.Features`` when it writes Arrow, and that ``dsreg info`` prints.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Feature", "Tensor", "ClassLabel", "Value", "Text", "Binary", "describe", "from_json"]

_NUMERIC = {
    "bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64",
}


class Feature(abc.ABC):
    """Base class of column descriptions."""

    @abc.abstractmethod
    def to_hf(self) -> Any:
        """Return the equivalent ``datasets`` feature."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Return a short human description, e.g. ``uint8[1, 28, 28]``."""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able description for ``dsreg info --json``."""
        return {"type": type(self).__name__, **self.__dict__}


@dataclass(frozen=True)
class Tensor(Feature):
    """A numeric array; ``None`` in ``shape`` marks a variable-length dimension (first one only)."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in _NUMERIC:
            raise ValueError(f"Tensor dtype {self.dtype!r} is not one of {sorted(_NUMERIC)}")
        object.__setattr__(self, "shape", tuple(self.shape))
        if any(d is None for d in self.shape[1:]):
            raise ValueError(f"Tensor shape {self.shape}: only the first dimension may be None")

    @property
    def fixed(self) -> bool:
        """True when every dimension is known, so a column is one contiguous array."""
        return all(d is not None for d in self.shape)

    def to_hf(self) -> Any:
        from datasets import List, Value as HFValue

        hf: Any = HFValue(self.dtype)
        for dim in reversed(self.shape):
            hf = List(hf, length=-1 if dim is None else dim)
        return hf

    def describe(self) -> str:
        dims = ", ".join("*" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class ClassLabel(Feature):
    """An int64 class index with its class names."""

    names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_hf(self) -> Any:
        from datasets import ClassLabel as HFClassLabel

        return HFClassLabel(names=list(self.names))

    def describe(self) -> str:
        shown = ", ".join(self.names[:12]) + (", …" if len(self.names) > 12 else "")
        return f"class label ({len(self.names)}: {shown})"


@dataclass(frozen=True)
class Value(Feature):
    """A scalar: a number, ``string`` or ``binary``."""

    dtype: str = "int64"

    def __post_init__(self) -> None:
        if self.dtype not in _NUMERIC | {"string", "binary"}:
            raise ValueError(f"Value dtype {self.dtype!r} is not numeric, 'string' or 'binary'")

    def to_hf(self) -> Any:
        from datasets import Value as HFValue

        return HFValue(self.dtype)

    def describe(self) -> str:
        return self.dtype


def Text() -> Value:  # noqa: N802 - reads as a type in a features dict
    """A UTF-8 string column."""
    return Value("string")


def Binary() -> Value:  # noqa: N802
    """A bytes column (e.g. an encoded image decoded on access)."""
    return Value("binary")


def describe(features: dict[str, Feature]) -> dict[str, str]:
    """Return ``{column: description}`` for display."""
    return {name: feat.describe() for name, feat in features.items()}


def from_json(data: dict[str, Any]) -> Feature | None:
    """Rebuild a core feature from ``Feature.to_json()`` output; None for a type the core does not know."""
    kinds: dict[str, type[Feature]] = {"Tensor": Tensor, "ClassLabel": ClassLabel, "Value": Value}
    fields = dict(data)
    kind = kinds.get(fields.pop("type", ""))
    if kind is None:
        return None
    if kind is Tensor:
        fields["shape"] = tuple(fields["shape"])
    return kind(**fields)
