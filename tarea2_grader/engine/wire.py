"""Strict decoding of what comes back from the sandbox (untrusted data, trusted code).

The sandbox's replies are JSON produced by code the student controls.  Only plain data is
rebuilt here: numbers, strings, lists, string-keyed dicts and tensors from an explicit
``{"__tensor__": {"dtype", "shape", "data"}}`` description, with bounded sizes.  Anything
else becomes an :class:`Opaco` that names its type, or raises :class:`Malformado`.
"""
import math

import torch

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "int16": torch.int16,
          "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}
MAX_ELEMENTS = 5_000_000
MAX_DEPTH = 24


class Malformado(ValueError):
    """The reply does not follow the wire format."""


class Opaco:
    """A value the probe could not describe as data (an object of a student's class, say)."""

    def __init__(self, tipo):
        self.tipo = str(tipo)[:80]

    def __repr__(self):
        return "Opaco({!r})".format(self.tipo)


def _tensor(spec):
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
        raise Malformado("tensor")
    dtype = DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    shape, data = spec["shape"], spec["data"]
    if dtype is None or not isinstance(shape, list) or not isinstance(data, list) or len(shape) > 8:
        raise Malformado("tensor")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise Malformado("tensor")
    if math.prod(shape) != len(data) or len(data) > MAX_ELEMENTS:
        raise Malformado("tensor")
    if dtype == torch.bool:
        if not all(isinstance(v, bool) for v in data):
            raise Malformado("tensor")
    elif not all(isinstance(v, (int, float)) for v in data):
        raise Malformado("tensor")
    if not dtype.is_floating_point and dtype != torch.bool and not all(isinstance(v, int) for v in data):
        raise Malformado("tensor")
    return torch.tensor(data, dtype=dtype).reshape(shape)


def decodificar(valor, depth=0):
    """Rebuild plain data and tensors from an untrusted JSON value."""
    if depth > MAX_DEPTH:
        raise Malformado("demasiado anidado")
    if valor is None or isinstance(valor, (bool, int, float, str)):
        return valor
    if isinstance(valor, list):
        return [decodificar(v, depth + 1) for v in valor]
    if isinstance(valor, dict):
        if "__tensor__" in valor:
            if len(valor) != 1:
                raise Malformado("tensor")
            return _tensor(valor["__tensor__"])
        if "__tuple__" in valor:
            if len(valor) != 1 or not isinstance(valor["__tuple__"], list):
                raise Malformado("tupla")
            return tuple(decodificar(v, depth + 1) for v in valor["__tuple__"])
        if "__type__" in valor:
            return Opaco(valor["__type__"])
        return {str(k): decodificar(v, depth + 1) for k, v in valor.items()}
    raise Malformado(type(valor).__name__)
