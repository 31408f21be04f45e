"""Reading a cell's source: IPython syntax, line maps, magics, and a thread-safe ``ast.parse``
(:func:`parsear`); iterative AST helpers (a scope's bindings, mutations, imports: :func:`resumir`);
:func:`asigna`, whether a cell assigns a variable.  Student text is hostile: an unreadable cell
raises :class:`Ilegible`, never anything else."""
from __future__ import annotations

import ast
import dataclasses
import difflib
import re
import threading
import warnings
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

__all__ = ["Ilegible", "asigna", "asigna_en", "ast_parse", "parsear", "resumir"]


# --------------------------------------------------------------------------- reading cells


class Ilegible(Exception):
    """A cell (or magic body) that neither IPython nor Python can read."""


_TM = []
_SALTO = re.compile(r"\r\n|\r|\n")


def _transformador():
    if not _TM:
        from IPython.core.inputtransformer2 import TransformerManager
        _TM.append(TransformerManager())
    return _TM[0]


def _lineas(texto: str) -> List[str]:
    return _SALTO.split(texto)


def _mapa_lineas(original: str, transformado: str) -> List[int]:
    """For each line of the transformed cell, the 1-based line of the original it came from."""
    orig, nuevo = _lineas(original), _lineas(transformado)
    k = 0
    while k < len(orig) and not orig[k].strip():
        k += 1
    if len(nuevo) == len(orig) - k:
        return [k + i + 1 for i in range(len(nuevo))]
    mapa = [k + 1] * len(nuevo)
    if len(orig) + len(nuevo) > 20000:  # difflib is quadratic at worst: a best effort for huge cells
        return [min(k + i + 1, len(orig)) for i in range(len(nuevo))]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, orig[k:], nuevo, autojunk=False).get_opcodes():
        for j in range(j1, j2):
            i = i1 + min(j - j1, max(i2 - i1 - 1, 0)) if tag != "insert" else max(i1 - 1, 0)
            mapa[j] = k + i + 1
    return mapa


_PARSE_LOCK = threading.Lock()


def ast_parse(texto: str) -> ast.Module:
    """``ast.parse``, one thread at a time, retried once after a spurious ``SystemError``.

    CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state, so parses
    running in two threads of the coordinator can fail with "AST constructor recursion depth
    mismatch" (python/cpython#106905); the text itself is fine, and a second parse succeeds.
    """
    with _PARSE_LOCK:
        try:
            return ast.parse(texto)
        except SystemError:
            return ast.parse(texto)


def parsear(fuente: str) -> Tuple[ast.Module, List[int]]:
    """The cell's AST and its line map; plain Python is parsed as is, IPython syntax transformed first.

    A cell that plain Python reads has no IPython syntax that changes its meaning (``%``, ``!``, ``?``
    and prompts are all invalid Python), so the transformer (slow on huge cells) runs only when needed.
    """
    if not isinstance(fuente, str):
        raise Ilegible("no es texto")
    try:
        arbol = ast_parse(fuente)
        return arbol, list(range(1, len(_lineas(fuente)) + 1))
    except (SyntaxError, ValueError, TypeError, OverflowError):
        pass
    except (RecursionError, MemoryError) as exc:
        raise Ilegible(type(exc).__name__)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            texto = _transformador().transform_cell(fuente)
        arbol = ast_parse(texto)
    except (RecursionError, MemoryError) as exc:
        raise Ilegible(type(exc).__name__)
    except Exception as exc:  # SyntaxError, ValueError (null bytes), whatever IPython's tokenizer raises
        raise Ilegible(type(exc).__name__)
    return arbol, _mapa_lineas(fuente, texto)


def asigna_en(arbol: Optional[ast.Module], fuente: str, variable: str) -> bool:
    """Whether a cell assigns ``variable`` anywhere (a plain, tuple, annotated, augmented or walrus
    target): ``arbol`` is the cell's parsed ``fuente``, None when it could not be read (then the text
    is searched for ``variable =``)."""
    if not isinstance(fuente, str) or variable not in fuente:
        return False
    if arbol is None:
        return re.search(r"\b{}\b\s*=[^=]".format(re.escape(variable)), fuente) is not None
    for nodo in ast.walk(arbol):
        objetivos = (nodo.targets if isinstance(nodo, ast.Assign) else
                     [nodo.target] if isinstance(nodo, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) else [])
        for objetivo in objetivos:
            if any(isinstance(x, ast.Name) and x.id == variable for x in ast.walk(objetivo)):
                return True
    return False


def asigna(fuente: str, variable: str) -> bool:
    """Whether the cell ``fuente`` assigns ``variable``: :func:`asigna_en` on what :func:`parsear` reads."""
    if not isinstance(fuente, str) or variable not in fuente:
        return False
    try:
        arbol, _ = parsear(fuente)
    except Ilegible:
        arbol = None
    return asigna_en(arbol, fuente, variable)


def cte(nodo) -> Optional[str]:
    return nodo.value if isinstance(nodo, ast.Constant) and isinstance(nodo.value, str) else None


def llamada_ipython(nodo) -> Optional[Tuple[str, ast.Call]]:
    """``get_ipython().metodo(...)``: (metodo, the call), else None."""
    if (isinstance(nodo, ast.Call) and isinstance(nodo.func, ast.Attribute)
            and isinstance(nodo.func.value, ast.Call) and isinstance(nodo.func.value.func, ast.Name)
            and nodo.func.value.func.id == "get_ipython" and not nodo.func.value.args):
        return nodo.func.attr, nodo
    return None


def magia_de_celda(arbol: ast.Module) -> Optional[Tuple[str, str, str]]:
    """(name, line, body) when the whole cell is one cell magic (``%%time`` ...)."""
    if len(arbol.body) != 1 or not isinstance(arbol.body[0], ast.Expr):
        return None
    ip = llamada_ipython(arbol.body[0].value)
    if not ip or ip[0] != "run_cell_magic" or len(ip[1].args) != 3:
        return None
    nombre, linea, cuerpo = (cte(a) for a in ip[1].args)
    if nombre is None or linea is None or cuerpo is None:
        return None
    return nombre, linea, cuerpo


def modulo_writefile(linea: str) -> Optional[str]:
    """The module a ``%%writefile [-a] path.py`` cell writes, or None when it is no Python module."""
    palabras = [w.strip("'\"") for w in linea.split() if w not in ("-a", "--append")]
    if not palabras:
        return None
    base = re.split(r"[\\/]", palabras[-1])[-1]
    if base.endswith(".py") and base[:-3].isidentifier():
        return base[:-3]
    return None


# --------------------------------------------------------------------------- AST helpers (iterative)


_AMBITOS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
COMPRENSIONES = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


_CAMPOS: Dict[type, Tuple[str, ...]] = {}


def nodos_hijos(n: ast.AST) -> List[ast.AST]:
    """``ast.iter_child_nodes`` without the ``ctx`` nodes, as a list (faster, same order)."""
    tipo = type(n)
    campos = _CAMPOS.get(tipo)
    if campos is None:
        campos = _CAMPOS[tipo] = tuple(f for f in getattr(tipo, "_fields", ()) if f != "ctx")
    out: List[ast.AST] = []
    for f in campos:
        v = getattr(n, f, None)
        if isinstance(v, ast.AST):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, ast.AST))
    return out


def _recorrer(nodos: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodos`` that runs in their scope: nested scopes yield themselves, their
    decorators, defaults and bases, but not their bodies; comprehension targets are skipped."""
    pila = list(nodos)[::-1]
    while pila:
        n = pila.pop()
        yield n
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            hijos = list(n.decorator_list) + list(n.args.defaults) + [d for d in n.args.kw_defaults if d]
        elif isinstance(n, ast.Lambda):
            hijos = list(n.args.defaults) + [d for d in n.args.kw_defaults if d]
        elif isinstance(n, ast.ClassDef):
            hijos = list(n.decorator_list) + list(n.bases) + [k.value for k in n.keywords]
        elif isinstance(n, ast.comprehension):
            hijos = [n.iter] + list(n.ifs)
        else:
            hijos = nodos_hijos(n)
        pila.extend(reversed(hijos))


@dataclasses.dataclass
class Resumen:
    """What a piece of code does in its own scope, from one walk."""

    ligados: Set[str] = dataclasses.field(default_factory=set)
    globales: Set[str] = dataclasses.field(default_factory=set)
    mutaciones: List[Tuple[str, bool]] = dataclasses.field(default_factory=list)  # (root, even of a module)
    dinamicos: List[Tuple[int, str]] = dataclasses.field(default_factory=list)  # (lineno, what)
    importaciones: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, dotted path)
    asignaciones: List[ast.Assign] = dataclasses.field(default_factory=list)


_DINAMICOS_IPYTHON = frozenset({"run_cell", "ex", "ev", "push", "safe_execfile", "run_code"})


def resumir(nodos: Iterable[ast.AST]) -> Resumen:
    """Bindings, global declarations, mutations of globals, dynamic definitions, imports, assignments."""
    r = Resumen()
    de_comprension: Set[str] = set()  # comprehension variables: local to it, never globals mutated
    for n in _recorrer(nodos):
        if isinstance(n, ast.comprehension):
            de_comprension.update(x.id for x in ast.walk(n.target) if isinstance(x, ast.Name))
        if isinstance(n, ast.Name):
            if not isinstance(n.ctx, ast.Load):
                r.ligados.add(n.id)
            elif n.id in ("builtins", "__builtins__", "importlib", "__import__"):
                r.dinamicos.append((n.lineno, n.id))
            continue
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            r.ligados.add(n.name)
        elif isinstance(n, ast.Import):
            for a in n.names:
                nombre = a.asname or a.name.split(".")[0]
                r.ligados.add(nombre)
                r.importaciones.append((nombre, a.name if a.asname else nombre))
        elif isinstance(n, ast.ImportFrom):
            for a in n.names:
                if a.name != "*":
                    r.ligados.add(a.asname or a.name)
                    if not n.level and n.module:
                        r.importaciones.append((a.asname or a.name, n.module + "." + a.name))
        elif isinstance(n, ast.ExceptHandler) and n.name:
            r.ligados.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            r.ligados.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            r.ligados.add(n.rest)
        elif isinstance(n, ast.Global):
            r.globales.update(n.names)
        elif isinstance(n, ast.Nonlocal):
            r.ligados.update(n.names)
        objetivos: Sequence[ast.AST] = ()
        if isinstance(n, (ast.Assign, ast.Delete)):
            objetivos = n.targets
            if isinstance(n, ast.Assign):
                r.asignaciones.append(n)
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
            objetivos = [n.target]
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            objetivos = [n.optional_vars]
        elif isinstance(n, (ast.For, ast.AsyncFor)):
            objetivos = [n.target]
        for t in objetivos:
            for sub in ast.walk(t) if isinstance(t, (ast.Tuple, ast.List, ast.Starred)) else [t]:
                if isinstance(sub, (ast.Attribute, ast.Subscript)):
                    raiz = _raiz_nombre(sub)
                    if raiz:
                        r.mutaciones.append((raiz, True))
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name):
                if f.id in ("setattr", "delattr") and n.args:
                    raiz = _raiz_nombre(n.args[0])
                    if raiz:
                        r.mutaciones.append((raiz, True))
                    if f.id == "setattr" and (len(n.args) < 2 or cte(n.args[1]) is None):
                        r.dinamicos.append((n.lineno, "setattr con un nombre calculado"))
                if f.id in ("exec", "eval"):
                    r.dinamicos.append((n.lineno, f.id))
                elif f.id in ("globals", "vars", "locals"):
                    r.dinamicos.append((n.lineno, f.id + "()"))
            elif isinstance(f, ast.Attribute):
                raiz = _raiz_nombre(f.value)
                if raiz:
                    r.mutaciones.append((raiz, False))
                ip = llamada_ipython(n)
                if ip and ip[0] in _DINAMICOS_IPYTHON:
                    r.dinamicos.append((n.lineno, "get_ipython().{}".format(ip[0])))
    r.ligados -= r.globales
    r.mutaciones = [(raiz, siempre) for raiz, siempre in r.mutaciones if raiz not in de_comprension]
    return r


def ligados(nodos: Iterable[ast.AST]) -> Tuple[Set[str], Set[str]]:
    """(names the code binds in its own scope, names it declares global)."""
    r = resumir(nodos)
    return r.ligados, r.globales


def parametros(args: ast.arguments) -> List[str]:
    nombres = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    nombres += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return nombres


def cadena(nodo: ast.AST) -> Tuple[ast.AST, List[str], List[ast.Attribute]]:
    """``a.b.c`` -> (the root node ``a``, ["b", "c"], the Attribute nodes of b and c)."""
    attrs, nodos = [], []
    while isinstance(nodo, ast.Attribute):
        attrs.append(nodo.attr)
        nodos.append(nodo)
        nodo = nodo.value
    return nodo, attrs[::-1], nodos[::-1]


def _raiz_nombre(nodo: ast.AST) -> Optional[str]:
    """The global name an attribute/subscript target hangs from (``X`` in ``X.a[k].b``)."""
    while isinstance(nodo, (ast.Attribute, ast.Subscript, ast.Starred)):
        nodo = nodo.value
    return nodo.id if isinstance(nodo, ast.Name) else None

