"""Strict decoding of what comes back from the sandbox (untrusted data, trusted code).

The sandbox's replies are JSON produced by code the student controls.  Only plain data is
rebuilt here: numbers, strings, lists, string-keyed dicts and tensors from an explicit
``{"__tensor__": {"dtype", "shape", "data"}}`` description, with bounded sizes.  Anything
else becomes an :class:`Opaque` that names its type, or raises :class:`Malformed`.
"""
import math

import torch

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "int16": torch.int16,
          "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}
MAX_ELEMENTS = 5_000_000
MAX_DEPTH = 24


class Malformed(ValueError):
    """The reply does not follow the wire format."""


class Opaque:
    """A value the probe could not describe as data (an object of a student's class, say)."""

    def __init__(self, type_name):
        self.type_name = str(type_name)[:80]

    def __repr__(self):
        return "Opaco({!r})".format(self.type_name)


def _tensor(spec):
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
        raise Malformed("tensor")
    dtype = DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    shape, data = spec["shape"], spec["data"]
    if dtype is None or not isinstance(shape, list) or not isinstance(data, list) or len(shape) > 8:
        raise Malformed("tensor")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise Malformed("tensor")
    if math.prod(shape) != len(data) or len(data) > MAX_ELEMENTS:
        raise Malformed("tensor")
    if dtype == torch.bool:
        if not all(isinstance(v, bool) for v in data):
            raise Malformed("tensor")
    elif not all(isinstance(v, (int, float)) for v in data):
        raise Malformed("tensor")
    if not dtype.is_floating_point and dtype != torch.bool and not all(isinstance(v, int) for v in data):
        raise Malformed("tensor")
    return torch.tensor(data, dtype=dtype).reshape(shape)


def decode(value, depth=0):
    """Rebuild plain data and tensors from an untrusted JSON value."""
    if depth > MAX_DEPTH:
        raise Malformed("demasiado anidado")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            if len(value) != 1:
                raise Malformed("tensor")
            return _tensor(value["__tensor__"])
        if "__tuple__" in value:
            if len(value) != 1 or not isinstance(value["__tuple__"], list):
                raise Malformed("tupla")
            return tuple(decode(v, depth + 1) for v in value["__tuple__"])
        if "__type__" in value:
            return Opaque(value["__type__"])
        return {str(k): decode(v, depth + 1) for k, v in value.items()}
    raise Malformed(type(value).__name__)
