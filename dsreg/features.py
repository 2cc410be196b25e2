"""Feature schema: what each column of a dataset holds, and how its values are checked, stored and read.

Each feature type owns its behaviour, so the prepared store, the Dataset, the trainer and the
conformance suite share one implementation of it:

- ``encode(column, value)``: what the prepared store writes for a value ``generate`` yields (a class
  name becomes its index, a numpy scalar a Python number, an array the declared dtype), raising
  ``ValueError`` that names the column when the value does not fit;
- ``check(column, value)``: the same verdict as a sentence (None when the value fits), and with
  ``loaded=True`` the check of what the Dataset returns;
- ``numeric``, ``shape``, ``fixed``, ``ragged``, ``nbytes``: how a column is read back (a tensor per
  column, per-row tensors, or Python values) and what an example of it weighs;
- ``is_label``, ``classes``: the class-label column and its class names.

Light descriptions (no torch, numpy or datasets at import time: the methods import them when
called) that the prepared store turns into Hugging Face ``datasets.Features`` when it writes Arrow,
and that ``dsreg info`` prints.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Feature",
    "Tensor",
    "ClassLabel",
    "Value",
    "Text",
    "Binary",
    "describe",
    "from_json",
    "label_column",
    "class_names",
]

#: The numeric dtypes a feature may declare, with their size in bytes.
_ITEMSIZE = {
    "bool": 1,
    "uint8": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
}
_NUMERIC = set(_ITEMSIZE)


def _cast(column: str, arr: Any, dtype: str, declared: str) -> Any:
    """Return numpy ``arr`` as ``dtype``, refusing values the cast would change: floats to integers, wrapped integers.

    Floats narrowed to a smaller float are rounded, as storing float64 audio as float32 should be.
    """
    import numpy as np

    want = np.dtype(dtype)
    if arr.dtype == want:
        return arr
    if arr.dtype == object:
        raise ValueError(f"column {column!r} is a ragged or non-numeric array, the feature says {declared}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"column {column!r} holds {arr.dtype} values, the feature says {declared}")
    if arr.dtype.kind == "f" and want.kind in "iub" and arr.size:  # [] is float64 to numpy: an empty sequence
        raise ValueError(f"column {column!r} holds {arr.dtype} values, the feature says {declared}")
    with np.errstate(all="ignore"):
        cast = arr.astype(want)
        if want.kind in "iub" and not np.array_equal(cast, arr):
            raise ValueError(f"column {column!r} holds {arr.dtype} values that {want} cannot represent (they would wrap)")
    return cast


class Feature(abc.ABC):
    """Base class of column descriptions.

    A plugin's own feature type implements ``to_hf`` and ``describe``; the defaults here treat its
    values as Python values that Arrow converts (``encode`` returns them unchanged) and reads back
    as such.
    """

    #: The values' dtype: a numeric one ("uint8", "int64", "float32", ...) read back as tensors, or
    #: "string"/"binary"; "" when the type does not say.
    dtype: str = ""
    #: The shape of one value (``()`` for a scalar); ``None`` first marks a length that varies.
    shape: tuple[int | None, ...] = ()

    @abc.abstractmethod
    def to_hf(self) -> Any:
        """Return the equivalent ``datasets`` feature."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Return a short human description, e.g. ``uint8[1, 28, 28]``."""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able description for ``dsreg info --json``."""
        return {"type": type(self).__name__, **self.__dict__}

    # -- storing -------------------------------------------------------------------------------
    def encode(self, column: str, value: Any) -> Any:
        """Return what the prepared store writes for ``value`` of ``column``; raise ValueError naming the column if it does not fit."""
        return value

    def check(self, column: str, value: Any, *, loaded: bool = False) -> str | None:
        """Return why ``value`` does not fit this column, or None when it does.

        ``loaded`` False judges a value ``generate`` yields exactly as the prepared store does
        (``encode``). ``loaded`` True judges what the Dataset returns: numbers must moreover be a
        tensor of exactly this dtype (a class index, not its name).
        """
        if loaded and self.numeric:
            import torch

            if not isinstance(value, torch.Tensor):
                return f"column {column!r} loads as {type(value).__name__}, not a tensor"
            got = str(value.dtype).removeprefix("torch.")
            if got != self.dtype:
                return f"column {column!r} loads as {got}, the feature says {self.dtype}"
        try:
            self.encode(column, value)
        except (ValueError, TypeError) as exc:
            return str(exc)
        return None

    # -- reading -------------------------------------------------------------------------------
    @property
    def numeric(self) -> bool:
        """True when the values are numbers, which the Dataset serves as tensors (else Python values)."""
        return self.dtype in _NUMERIC

    @property
    def ragged(self) -> bool:
        """True when the first dimension varies between examples (a batch needs padding)."""
        return bool(self.shape) and self.shape[0] is None

    @property
    def fixed(self) -> bool:
        """True for numbers of one shape in every example, so a whole column is one contiguous tensor."""
        return self.numeric and None not in self.shape

    @property
    def nbytes(self) -> int | None:
        """Bytes one example of this column takes when stored, or None when it varies."""
        return math.prod(d for d in self.shape if d is not None) * _ITEMSIZE[self.dtype] if self.fixed else None

    # -- labels --------------------------------------------------------------------------------
    @property
    def is_label(self) -> bool:
        """True for a class-label column (what a classifier learns)."""
        return False

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names of a label column (empty for other columns)."""
        return ()


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

    def encode(self, column: str, value: Any) -> Any:
        """Return ``value`` as a numpy array of the declared dtype and shape (lists, arrays, tensors)."""
        import numpy as np

        if isinstance(value, (str, bytes, dict)):
            raise ValueError(f"column {column!r} is {type(value).__name__}, the feature says {self.describe()}")
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:  # e.g. nested lists of different lengths
            raise ValueError(f"column {column!r} is not an array ({exc})") from None
        arr = _cast(column, arr, self.dtype, self.describe())
        if arr.ndim != len(self.shape) or any(d is not None and d != s for d, s in zip(self.shape, arr.shape)):
            raise ValueError(f"column {column!r}: shape {arr.shape}, the feature says {self.shape}")
        return arr

    def to_hf(self) -> Any:
        from datasets import List
        from datasets import Value as HFValue

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
    dtype = "int64"  # not a field: every class label is stored as int64

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def is_label(self) -> bool:
        return True

    @property
    def classes(self) -> tuple[str, ...]:
        return self.names

    def _shown(self) -> str:
        return ", ".join(self.names[:12]) + (", …" if len(self.names) > 12 else "")

    def encode(self, column: str, value: Any) -> int:
        """Return the class index of ``value``: a class name, or an integer index in range."""
        import numpy as np

        if isinstance(value, str):
            if value in self.names:
                return self.names.index(value)
            raise ValueError(f"column {column!r}: {value!r} is not one of the class names ({self._shown()})")
        arr = np.asarray(value) if not isinstance(value, (bytes, dict)) else np.asarray(None)
        if arr.ndim != 0 or arr.dtype.kind not in "iu":  # a bool or a float is a mistake, not a label
            raise ValueError(f"column {column!r} is {type(value).__name__} {value!r}, not a class index or name")
        index = int(arr)
        if not self.names:
            raise ValueError(f"column {column!r}: the ClassLabel declares no class names, so no label fits")
        if not 0 <= index < self.num_classes:
            raise ValueError(f"column {column!r}: label {index} is outside 0..{self.num_classes - 1}")
        return index

    def to_hf(self) -> Any:
        from datasets import ClassLabel as HFClassLabel

        return HFClassLabel(names=list(self.names))

    def describe(self) -> str:
        if not self.names:  # a folder dataset before its data is read: the class folders name them
            return "class label (names read from the data)"
        return f"class label ({len(self.names)}: {self._shown()})"


@dataclass(frozen=True)
class Value(Feature):
    """A scalar: a number, ``string`` or ``binary``."""

    dtype: str = "int64"

    def __post_init__(self) -> None:
        if self.dtype not in _NUMERIC | {"string", "binary"}:
            raise ValueError(f"Value dtype {self.dtype!r} is not numeric, 'string' or 'binary'")

    def encode(self, column: str, value: Any) -> Any:
        """Return ``value`` as the Python scalar Arrow stores: str, bytes, or a number of the declared dtype."""
        kind = type(value).__name__
        if self.dtype == "string":
            if not isinstance(value, str):
                raise ValueError(f"column {column!r} is {kind}, the feature says string")
            return value
        if self.dtype == "binary":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise ValueError(f"column {column!r} is {kind}, the feature says binary")
            return bytes(value)
        import numpy as np

        arr = None if isinstance(value, (str, bytes, dict)) else np.asarray(value)
        if arr is None or arr.ndim != 0:
            raise ValueError(f"column {column!r} is {kind}, the feature says a {self.dtype} scalar")
        return _cast(column, arr, self.dtype, self.dtype).item()

    def to_hf(self) -> Any:
        from datasets import Value as HFValue

        return HFValue(self.dtype)

    def describe(self) -> str:
        return self.dtype


def Text() -> Value:
    """A UTF-8 string column."""
    return Value("string")


def Binary() -> Value:
    """A bytes column (e.g. an encoded image decoded on access)."""
    return Value("binary")


def describe(features: dict[str, Feature]) -> dict[str, str]:
    """Return ``{column: description}`` for display."""
    return {name: feat.describe() for name, feat in features.items()}


def label_column(features: Mapping[str, Feature]) -> str | None:
    """Return the name of the first class-label column, or None when there is none."""
    return next((name for name, feat in features.items() if feat.is_label), None)


def class_names(features: Mapping[str, Feature]) -> list[str]:
    """Return the class names of the first class-label column (empty when there is none)."""
    label = label_column(features)
    return list(features[label].classes) if label is not None else []


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
