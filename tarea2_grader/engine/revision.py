"""Static review of the autograd ban: can the code a hidden test grades reach a machine-made derivative?

Students compute every gradient by hand.  The hidden tests (:mod:`tarea2_grader.tarea2.hidden`) only
judge outputs, so this module reads the submitted source and marks, for each hidden test, the
constructs that the code the test grades *can reach* and that differentiate without the student
writing the derivative: torch's autograd in either mode, ``torch.func``/functorch, torch's engine,
its backward kernels and private namespaces, symbolic or other automatic differentiation, and the
tools that reach them indirectly (dynamic code, dunder attributes, frames, processes, pickles,
unknown modules).

Reachability, not presence.  All top-level definitions of all code cells are collected first
(functions, classes, assignments, imports with their aliases, ``%%writefile`` modules, mutations
such as ``FFNN.backward = ...``), every binding of a name counting (a name rebound in several cells
reaches all of them).  From the roots of each test (:data:`PARTES`), every global name that reached
code loads is followed: other functions and classes, globals, decorators, default arguments, base
classes, module aliases (``ag.grad`` after ``import torch.autograd as ag`` is judged as
``torch.autograd.grad``, at the use and at the import).  What no root reaches (the student's own
check cells, the course's autograd checks in the given cells) is never marked.  Names that no cell
defines, and names defined dynamically (``exec``, ``globals()[...] = ...``), make reachability
impossible to tell: they give a notebook-level review note, which marks no part.

What is allowed is an allow-list (:data:`MODULOS_PERMITIDOS`, with :data:`PROHIBIDOS` naming the
forbidden places inside allowed modules and the known dangerous modules): anything else is an
unknown module and is marked.

Nothing here runs, imports or compiles student code, nor imports torch: :mod:`ast` and IPython's
input transformer only (for ``%`` and ``!`` syntax).  Student text is hostile: a cell that cannot
be read is skipped with a note (the kernel could not have run it either), the traversal is
iterative (no recursion on deep nesting), and every fragment of student text in a message is
stripped of control characters and capped at :data:`LIMITE` characters.
"""
from __future__ import annotations

import ast
import builtins
import collections
import dataclasses
import difflib
import json
import re
import sys
import threading
import unicodedata
import warnings
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

__all__ = ["Celda", "Marca", "Parte", "Revision", "PARTES", "MODULOS_PERMITIDOS", "PROHIBIDOS", "LIMITE",
           "celdas_de_notebook", "juzgar_ruta", "revisar", "revisar_nb", "seguro", "texto_marca"]

LIMITE = 120  # characters of student text per message fragment
PRINCIPAL = "__main__"  # the notebook's own namespace

# --------------------------------------------------------------------------- what each test grades


@dataclasses.dataclass(frozen=True)
class Parte:
    """What one hidden test grades, as the probes of :mod:`tarea2_grader.tarea2.probes` call it.

    ``nombres``: top-level names the test calls (functions, classes: all their methods);
    ``reejecuta``: the test re-runs the last cell before it that assigns this variable;
    ``entradas``: names the test sets before re-running that cell (never the notebook's);
    ``prestados``: names the test replaces with the course's correct code while it runs (only
    call-time lookups see the replacement; what a definition captured is still the student's).
    """

    celda: str
    nombres: Tuple[str, ...] = ()
    reejecuta: Optional[str] = None
    entradas: FrozenSet[str] = frozenset()
    prestados: FrozenSet[str] = frozenset()


_PRESTADOS = frozenset({"sig", "tanh", "relu", "swish", "celu", "CELoss"})  # ayudas.REFERENCIAS
_SALIDA = frozenset({"hL", "U", "c", "y", "y_pred", "dL_duLm1"})  # hidden._plan_ultima_capa's inputs

PARTES: Dict[str, Parte] = {
    "test_derivadas_basicas": Parte("derivadas_codigo", nombres=("sig", "tanh", "relu")),
    "test_derivadas_swish": Parte("derivadas_codigo", nombres=("swish",)),
    "test_derivadas_celu": Parte("derivadas_codigo", nombres=("celu",)),
    "test_celoss": Parte("celoss", nombres=("CELoss",)),
    "test_dL_duLm1": Parte("dL_duLm1", reejecuta="dL_duLm1", entradas=frozenset({"y", "y_pred"})),
    "test_ultima_capa": Parte("ultima_capa", reejecuta="dL_dU", entradas=_SALIDA),
    "test_capa_escondida_basicas": Parte("capas_escondidas", nombres=("grad_capa_escondida",),
                                         prestados=_PRESTADOS),
    "test_capa_escondida_param": Parte("capas_escondidas", nombres=("grad_capa_escondida",),
                                       prestados=_PRESTADOS),
    "test_backward_basicas": Parte("ffnn_backward", nombres=("FFNN",), prestados=_PRESTADOS),
    "test_backward_param": Parte("ffnn_backward", nombres=("FFNN",), prestados=_PRESTADOS),
    "test_sgd": Parte("sgd", nombres=("SGD",)),
    "test_dataset": Parte("random_dataset", nombres=("RandomDataset",)),
    "test_entrenar": Parte("entrenar", nombres=("entrenar_FFNN",), prestados=_PRESTADOS),
}

# --------------------------------------------------------------------------- the allow-list

TODO = None  # every public attribute of the module (and of its submodules)

# Modules graded code may use: None = every public attribute, or the only attributes allowed.
MODULOS_PERMITIDOS: Dict[str, Optional[FrozenSet[str]]] = {
    "torch": TODO,  # narrowed by TORCH_RAMAS and PROHIBIDOS
    "math": TODO, "cmath": TODO, "random": TODO, "numpy": TODO, "itertools": TODO, "functools": TODO,
    "operator": TODO, "collections": TODO, "typing": TODO, "typing_extensions": TODO, "dataclasses": TODO,
    "time": TODO, "copy": TODO, "statistics": TODO, "tqdm": TODO, "matplotlib": TODO, "warnings": TODO,
    "torchvision": TODO, "sklearn": TODO, "IPython.display": TODO, "google.colab": TODO,
    "string": TODO, "re": TODO, "json": TODO, "datetime": TODO, "enum": TODO, "abc": TODO,
    "numbers": TODO, "fractions": TODO, "decimal": TODO, "heapq": TODO, "bisect": TODO, "pprint": TODO,
    "textwrap": TODO, "contextlib": TODO, "__future__": TODO, "csv": TODO, "pathlib": TODO,
    "pandas": TODO, "seaborn": TODO, "PIL": TODO, "concurrent.futures": TODO, "io": TODO,
    "os": frozenset({
        "path", "environ", "getenv", "listdir", "makedirs", "mkdir", "getcwd", "sep", "linesep", "name",
        "cpu_count", "walk", "scandir", "stat", "remove", "unlink", "rename", "replace", "rmdir", "chdir",
        "getpid", "devnull", "curdir", "pardir", "extsep", "pathsep", "fspath", "PathLike",
        "get_terminal_size", "access", "R_OK", "W_OK", "X_OK", "F_OK"}),
    "os.path": TODO,
    "sys": frozenset({
        "stdout", "stderr", "stdin", "float_info", "int_info", "maxsize", "maxunicode", "version",
        "version_info", "hexversion", "platform", "byteorder", "getsizeof", "getrecursionlimit",
        "setrecursionlimit", "float_repr_style", "executable", "argv", "path", "exit",
        "getdefaultencoding", "getfilesystemencoding"}),
    "gc": frozenset({"collect", "isenabled", "enable", "disable"}),
    "pickle": frozenset({"dump", "dumps", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "PicklingError"}),
    "inspect": frozenset({"signature", "Signature", "Parameter", "isfunction", "ismethod", "isclass",
                          "isbuiltin", "isroutine"}),
}

# Branches of torch whose attributes may be followed deeper than torch.X (torch.X itself is
# allowed for every public X not forbidden below): submodules and classes with public members.
TORCH_RAMAS = frozenset({
    "nn", "linalg", "special", "fft", "distributions", "cuda", "backends", "random", "testing", "optim",
    "amp", "cpu", "mps", "sparse", "utils.data", "version", "types", "Tensor", "Generator", "Size", "dtype",
    "device", "finfo", "iinfo", "no_grad", "inference_mode"})
_TORCH_DTYPE = re.compile(r"^(float|int|uint|bool|complex|bfloat|half|double|long|short|cfloat|cdouble)")

_AUTOGRAD = "{ruta}"  # autograd and its relatives are reported by their own dotted name
_PROCESOS = "creación de procesos ({ruta})"
_PICKLE = "carga con pickle ({ruta})"
_OTRA_AD = "otra biblioteca de diferenciación automática ({ruta})"

# Forbidden places (a dotted prefix) and how they are reported ({ruta}: the full dotted name).
PROHIBIDOS: Dict[str, str] = {
    "torch.autograd": _AUTOGRAD, "torch.func": _AUTOGRAD, "functorch": _AUTOGRAD, "torch.ops": _AUTOGRAD,
    "torch.enable_grad": _AUTOGRAD, "torch.set_grad_enabled": _AUTOGRAD,
    "torch.Tensor.backward": _AUTOGRAD, "torch.Tensor.grad_fn": _AUTOGRAD, "torch.Tensor.register_hook": _AUTOGRAD,
    "torch.jit": _AUTOGRAD, "torch.compile": _AUTOGRAD, "torch.fx": _AUTOGRAD, "torch.export": _AUTOGRAD,
    "torch.library": _AUTOGRAD, "torch.overrides": _AUTOGRAD, "torch.utils.checkpoint": _AUTOGRAD,
    "torch.hub": "código externo ({ruta})", "torch.utils.cpp_extension": "código nativo ({ruta})",
    "torch.multiprocessing": _PROCESOS, "torch.distributed": _PROCESOS, "torch.load": _PICKLE,
    "sympy": "diferenciación simbólica ({ruta})",
    "jax": _OTRA_AD, "jaxlib": _OTRA_AD, "autograd": _OTRA_AD, "tensorflow": _OTRA_AD, "keras": _OTRA_AD,
    "theano": _OTRA_AD, "aesara": _OTRA_AD, "pytensor": _OTRA_AD, "mxnet": _OTRA_AD, "tangent": _OTRA_AD,
    "tinygrad": _OTRA_AD, "micrograd": _OTRA_AD, "mygrad": _OTRA_AD, "casadi": _OTRA_AD,
    "importlib": "código dinámico ({ruta})", "runpy": "código dinámico ({ruta})",
    "code": "código dinámico ({ruta})", "codeop": "código dinámico ({ruta})",
    "typing.get_type_hints": "código dinámico ({ruta})",
    "builtins": "acceso a builtins ({ruta})",
    "inspect.currentframe": "acceso a marcos de ejecución ({ruta})", "inspect.stack": "acceso a marcos de ejecución ({ruta})",
    "inspect.getouterframes": "acceso a marcos de ejecución ({ruta})", "inspect.trace": "acceso a marcos de ejecución ({ruta})",
    "inspect.getframeinfo": "acceso a marcos de ejecución ({ruta})",
    "ctypes": "código nativo ({ruta})", "cffi": "código nativo ({ruta})", "numpy.ctypeslib": "código nativo ({ruta})",
    "subprocess": _PROCESOS, "multiprocessing": _PROCESOS, "pty": _PROCESOS,
    "concurrent.futures.ProcessPoolExecutor": _PROCESOS, "socket": "creación de sockets ({ruta})",
    "pickle.load": _PICKLE, "pickle.loads": _PICKLE, "pickle.Unpickler": _PICKLE, "marshal": _PICKLE, "shelve": _PICKLE, "dill": _PICKLE, "cloudpickle": _PICKLE,
    "joblib": _PICKLE, "pandas.read_pickle": _PICKLE,
    "sys.modules": "acceso a sys.modules", "sys._getframe": "acceso a marcos de ejecución ({ruta})",
    "sys.settrace": "trazado de ejecución ({ruta})", "sys.setprofile": "trazado de ejecución ({ruta})",
    "gc.get_objects": "recorrido de objetos vivos ({ruta})", "gc.get_referrers": "recorrido de objetos vivos ({ruta})",
    "gc.get_referents": "recorrido de objetos vivos ({ruta})",
}
# Allowed although under a forbidden prefix: they switch autograd off, they differentiate nothing.
EXCEPCIONES = frozenset({"torch.autograd.no_grad", "torch.autograd.inference_mode",
                         "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode",
                         # the given FFNN finds an activation's parameter from its signature
                         "inspect.signature", "inspect.Parameter", "inspect.Signature"})
_OS_PROCESOS = re.compile(r"^(system|popen|fork|forkpty|exec|spawn|posix_spawn|kill|killpg|_exit|abort|"
                          r"startfile|wait|setsid|pidfd)")

# Attribute names marked on any receiver (not only on a module): autograd's objects, hooks,
# forward mode, frames.  The student's own attributes (self.x) are exempt.
ATRIBUTOS_PROHIBIDOS: Dict[str, str] = {
    "autograd": "torch.autograd (atributo .autograd)", "functorch": "functorch (atributo .functorch)",
    "grad_fn": "atributo de autograd (.grad_fn)", "_grad_fn": "atributo de autograd (._grad_fn)",
    "next_functions": "atributo de autograd (.next_functions)",
    "_execution_engine": "motor de autograd (._execution_engine)", "_ImperativeEngine": "motor de autograd (._ImperativeEngine)",
    "run_backward": "motor de autograd (.run_backward)", "_C": "motor de torch (._C)", "_VF": "motor de torch (._VF)",
    "_decomp": "torch._decomp (atributo)", "_refs": "torch._refs (atributo)", "_prims": "torch._prims (atributo)",
    "_functorch": "functorch (atributo ._functorch)", "_dynamo": "torch._dynamo (atributo)",
    "forward_ad": "autograd en modo directo (.forward_ad)", "make_dual": "autograd en modo directo (.make_dual)",
    "unpack_dual": "autograd en modo directo (.unpack_dual)", "dual_level": "autograd en modo directo (.dual_level)",
    "jvp": "diferenciación automática (.jvp)", "vjp": "diferenciación automática (.vjp)",
    "jacrev": "diferenciación automática (.jacrev)", "jacfwd": "diferenciación automática (.jacfwd)",
    "jacobian": "diferenciación automática (.jacobian)", "hessian": "diferenciación automática (.hessian)",
    "hvp": "diferenciación automática (.hvp)", "vhp": "diferenciación automática (.vhp)",
    "grad_and_value": "diferenciación automática (.grad_and_value)",
    "enable_grad": "torch.enable_grad (atributo)", "set_grad_enabled": "torch.set_grad_enabled (atributo)",
    "register_hook": "gancho de autograd (.register_hook)",
    "register_full_backward_hook": "gancho de autograd (.register_full_backward_hook)",
    "register_backward_hook": "gancho de autograd (.register_backward_hook)",
    "register_full_backward_pre_hook": "gancho de autograd (.register_full_backward_pre_hook)",
    "register_post_accumulate_grad_hook": "gancho de autograd (.register_post_accumulate_grad_hook)",
    "_getframe": "acceso a marcos de ejecución (._getframe)",
    "f_globals": "acceso a marcos de ejecución (.f_globals)", "f_locals": "acceso a marcos de ejecución (.f_locals)",
    "f_back": "acceso a marcos de ejecución (.f_back)", "f_builtins": "acceso a marcos de ejecución (.f_builtins)",
    "f_code": "acceso a marcos de ejecución (.f_code)", "tb_frame": "acceso a marcos de ejecución (.tb_frame)",
    "gi_frame": "acceso a marcos de ejecución (.gi_frame)", "cr_frame": "acceso a marcos de ejecución (.cr_frame)",
}
# Too generic to mark everywhere, but torch.func / torch.ops through an alias the analysis lost.
ATRIBUTOS_SOSPECHOSOS = frozenset({"func", "ops"})
ATRIBUTOS_DUNDER_OK = frozenset({"__name__", "__qualname__", "__doc__", "__module__", "__version__", "__file__"})
NOMBRES_DUNDER_OK = frozenset({"__name__", "__doc__", "__debug__", "__file__"})
_BACKWARD_KW = frozenset({"gradient", "retain_graph", "create_graph", "inputs", "grad_tensors"})

DINAMICOS = frozenset({"eval", "exec", "compile", "__import__", "globals", "breakpoint"})
POR_NOMBRE = frozenset({"vars", "locals"})
ATRIBUTO_POR_NOMBRE = frozenset({"getattr", "hasattr", "setattr", "delattr"})
BUILTINS = frozenset(dir(builtins))
IPYTHON_BUILTINS = frozenset({"get_ipython", "display", "In", "Out", "exit", "quit", "_", "__", "___",
                              "_ih", "_oh", "_dh", "_i", "_ii", "_iii"})

MAGIAS_CON_CODIGO = frozenset({"time", "timeit", "prun", "capture"})  # they run Python code given to them
MAGIAS_INOFENSIVAS = frozenset({"matplotlib", "load_ext", "reload_ext", "autoreload", "aimport", "pip", "conda",
                                "who", "whos", "who_ls", "pwd", "ls", "precision", "xmode", "pinfo", "pinfo2",
                                "pdoc", "config", "colors", "lsmagic", "magic", "env", "tensorflow_version",
                                "pylab", "page", "pprint"})
MAGIAS_SIN_PYTHON = frozenset({"bash", "sh", "script", "html", "HTML", "javascript", "js", "latex", "markdown",
                               "svg", "perl", "ruby", "python", "python2", "python3", "pypy", "file", "system", "sx"})
COMANDOS_INOFENSIVOS = frozenset({"pip", "pip3", "nvidia-smi", "ls", "pwd", "cat", "head", "tail", "wget", "unzip",
                                  "mkdir", "echo", "du", "df", "free", "nproc", "which", "lscpu", "uname"})

# --------------------------------------------------------------------------- public records


@dataclasses.dataclass(frozen=True)
class Celda:
    """One code cell of the submitted notebook.

    ``numero``: 1-based position in the notebook, every cell type counted; ``grade_id``: nbgrader's,
    None for a cell the student added (or whose metadata was lost); ``dada``: a locked course cell.
    """

    numero: int
    grade_id: Optional[str]
    fuente: str
    dada: bool = False


@dataclasses.dataclass(frozen=True)
class Marca:
    """A forbidden construct that the code of test ``prueba`` can reach.

    ``celda``: 1-based cell number; ``linea``: 1-based line in the cell's original source;
    ``construccion``: short Spanish name of the construct; ``detalle``: where, and from which root.
    """

    prueba: str
    celda: int
    grade_id: Optional[str]
    linea: int
    construccion: str
    detalle: str


@dataclasses.dataclass
class Revision:
    """The review of one notebook.

    ``marcas``: test name -> its marks (every test of :data:`PARTES`, possibly empty);
    ``revisar_notebook``: Spanish reasons why reachability cannot be told (they mark no part);
    ``notas``: what the analysis skipped (cells it could not read) and other remarks.
    """

    marcas: Dict[str, List[Marca]]
    revisar_notebook: List[str]
    notas: List[str]

    def partes_marcadas(self) -> List[str]:
        """The tests with at least one mark, in :data:`PARTES` order."""
        return [p for p, ms in self.marcas.items() if ms]

    def todas(self) -> List[Marca]:
        """Every mark, test by test."""
        return [m for ms in self.marcas.values() for m in ms]

    def como_datos(self) -> dict:
        """Plain JSON-able data."""
        return {"marcas": {p: [dataclasses.asdict(m) for m in ms] for p, ms in self.marcas.items()},
                "revisar_notebook": list(self.revisar_notebook), "notas": list(self.notas)}


def seguro(texto, limite: int = LIMITE) -> str:
    """Student text made safe for one message line: control and invisible characters escaped, capped."""
    s = str(texto)[:4 * limite]
    out = []
    for ch in s:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            o = ord(ch)
            out.append("\\x%02x" % o if o < 0x100 else "\\u%04x" % o if o < 0x10000 else "\\U%08x" % o)
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limite else s[:limite - 1] + "…"


def texto_marca(marca: Marca, con_detalle: bool = False) -> str:
    """One Spanish line: ``revisión: celda 12, línea 7: torch.autograd.grad``."""
    linea = "revisión: celda {}, línea {}: {}".format(marca.celda, marca.linea, seguro(marca.construccion))
    if con_detalle and marca.detalle:
        linea += " ({})".format(seguro(marca.detalle))
    return linea


# --------------------------------------------------------------------------- judging a dotted name


def _es_dunder(nombre: str) -> bool:
    return len(nombre) > 4 and nombre.startswith("__") and nombre.endswith("__")


def _prefijo_de_permitido(ruta: str) -> bool:
    """Whether ``ruta`` is a package above an allowed module (``google`` for ``google.colab``)."""
    return any(m.startswith(ruta + ".") for m in MODULOS_PERMITIDOS)


def juzgar_ruta(ruta: str) -> Optional[str]:
    """The Spanish construct a dotted module path is marked as, or None when it is allowed.

    ``torch.autograd.grad`` -> "torch.autograd.grad"; ``torch.exp`` -> None; ``foo.bar`` ->
    "módulo desconocido: foo"; ``os.system`` -> "creación de procesos (os.system)".
    """
    partes = ruta.split(".")
    mostrar = seguro(ruta)
    for k in range(len(partes), 0, -1):
        if ".".join(partes[:k]) in EXCEPCIONES:
            return None
    for i, p in enumerate(partes[1:], 1):
        if _es_dunder(p) and p not in ATRIBUTOS_DUNDER_OK:
            if p == "__class__" and i + 1 < len(partes) and partes[i + 1] in ("__name__", "__qualname__"):
                continue
            return "acceso a un atributo dunder ({})".format(seguro(p))
    for k in range(len(partes), 0, -1):
        plantilla = PROHIBIDOS.get(".".join(partes[:k]))
        if plantilla is not None:
            return plantilla.format(ruta=mostrar)
    if partes[0] == "os" and len(partes) > 1 and _OS_PROCESOS.match(partes[1]):
        return _PROCESOS.format(ruta=mostrar)
    for p in partes[1:]:
        if p.startswith("_") and not _es_dunder(p):
            return mostrar if partes[0] == "torch" else "nombre privado de un módulo ({})".format(mostrar)
        if p == "backward" or p in ATRIBUTOS_PROHIBIDOS:
            return mostrar if partes[0] == "torch" else ATRIBUTOS_PROHIBIDOS.get(p, "Tensor.backward()")
    if partes[0] == "torch":
        return _juzgar_torch(partes)
    for k in range(len(partes), 0, -1):
        pref = ".".join(partes[:k])
        if pref in MODULOS_PERMITIDOS:
            solo = MODULOS_PERMITIDOS[pref]
            if solo is None or k == len(partes) or partes[k] in solo or ".".join(partes[:k + 1]) in MODULOS_PERMITIDOS:
                return None
            return "{} no está permitido".format(seguro(".".join(partes[:k + 1])))
    if _prefijo_de_permitido(ruta):
        return None
    cabeza = partes[0] if not _prefijo_de_permitido(partes[0]) or len(partes) == 1 else ".".join(partes[:2])
    return "módulo desconocido: {}".format(seguro(cabeza or ruta))


def _juzgar_torch(partes: List[str]) -> Optional[str]:
    """torch.X is allowed for every public X; deeper only inside :data:`TORCH_RAMAS`."""
    resto = partes[1:]
    if len(resto) <= 1:
        return None
    if resto[0] in TORCH_RAMAS or ".".join(resto[:2]) in TORCH_RAMAS:
        return None
    if resto[0][:1].isupper() or _TORCH_DTYPE.match(resto[0]):
        return None
    return "módulo desconocido: {}".format(seguro("torch." + resto[0]))


# --------------------------------------------------------------------------- reading cells


class _Ilegible(Exception):
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


def _ast_parse(texto: str) -> ast.Module:
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


def _parsear(fuente: str) -> Tuple[ast.Module, List[int]]:
    """The cell's AST and its line map; plain Python is parsed as is, IPython syntax transformed first.

    A cell that plain Python reads has no IPython syntax that changes its meaning (``%``, ``!``, ``?``
    and prompts are all invalid Python), so the transformer (slow on huge cells) runs only when needed.
    """
    if not isinstance(fuente, str):
        raise _Ilegible("no es texto")
    try:
        arbol = _ast_parse(fuente)
        return arbol, list(range(1, len(_lineas(fuente)) + 1))
    except (SyntaxError, ValueError, TypeError, OverflowError):
        pass
    except (RecursionError, MemoryError) as exc:
        raise _Ilegible(type(exc).__name__)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            texto = _transformador().transform_cell(fuente)
        arbol = _ast_parse(texto)
    except (RecursionError, MemoryError) as exc:
        raise _Ilegible(type(exc).__name__)
    except Exception as exc:  # SyntaxError, ValueError (null bytes), whatever IPython's tokenizer raises
        raise _Ilegible(type(exc).__name__)
    return arbol, _mapa_lineas(fuente, texto)


def _conocido(cabeza: str) -> bool:
    """Whether a top-level module name is one the allow-list knows (allowed or forbidden)."""
    return any(m.split(".")[0] == cabeza for m in MODULOS_PERMITIDOS) or \
        any(m.split(".")[0] == cabeza for m in PROHIBIDOS)


def _rutas_de_import(ruta: str, escritos: Set[str]) -> Set[str]:
    """What an imported dotted name may be: a student's %%writefile module ('@' + path), the real
    module, or both when a written file shadows a module the allow-list knows (``tqdm.py``)."""
    cabeza = ruta.split(".")[0]
    if cabeza in escritos:
        return {"@" + ruta, ruta} if _conocido(cabeza) else {"@" + ruta}
    return {ruta}


def _cte(nodo) -> Optional[str]:
    return nodo.value if isinstance(nodo, ast.Constant) and isinstance(nodo.value, str) else None


def _llamada_ipython(nodo) -> Optional[Tuple[str, ast.Call]]:
    """``get_ipython().metodo(...)``: (metodo, the call), else None."""
    if (isinstance(nodo, ast.Call) and isinstance(nodo.func, ast.Attribute)
            and isinstance(nodo.func.value, ast.Call) and isinstance(nodo.func.value.func, ast.Name)
            and nodo.func.value.func.id == "get_ipython" and not nodo.func.value.args):
        return nodo.func.attr, nodo
    return None


def _magia_de_celda(arbol: ast.Module) -> Optional[Tuple[str, str, str]]:
    """(name, line, body) when the whole cell is one cell magic (``%%time`` ...)."""
    if len(arbol.body) != 1 or not isinstance(arbol.body[0], ast.Expr):
        return None
    ip = _llamada_ipython(arbol.body[0].value)
    if not ip or ip[0] != "run_cell_magic" or len(ip[1].args) != 3:
        return None
    nombre, linea, cuerpo = (_cte(a) for a in ip[1].args)
    if nombre is None or linea is None or cuerpo is None:
        return None
    return nombre, linea, cuerpo


def _modulo_writefile(linea: str) -> Optional[str]:
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
_COMPRENSIONES = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


_CAMPOS: Dict[type, Tuple[str, ...]] = {}


def _hijos(n: ast.AST) -> List[ast.AST]:
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
            hijos = _hijos(n)
        pila.extend(reversed(hijos))


@dataclasses.dataclass
class _Resumen:
    """What a piece of code does in its own scope, from one walk."""

    ligados: Set[str] = dataclasses.field(default_factory=set)
    globales: Set[str] = dataclasses.field(default_factory=set)
    mutaciones: List[Tuple[str, bool]] = dataclasses.field(default_factory=list)  # (root, even of a module)
    dinamicos: List[Tuple[int, str]] = dataclasses.field(default_factory=list)  # (lineno, what)
    importaciones: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, dotted path)
    asignaciones: List[ast.Assign] = dataclasses.field(default_factory=list)


_DINAMICOS_IPYTHON = frozenset({"run_cell", "ex", "ev", "push", "safe_execfile", "run_code"})


def _resumir(nodos: Iterable[ast.AST]) -> _Resumen:
    """Bindings, global declarations, mutations of globals, dynamic definitions, imports, assignments."""
    r = _Resumen()
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
                    if f.id == "setattr" and (len(n.args) < 2 or _cte(n.args[1]) is None):
                        r.dinamicos.append((n.lineno, "setattr con un nombre calculado"))
                if f.id in ("exec", "eval"):
                    r.dinamicos.append((n.lineno, f.id))
                elif f.id in ("globals", "vars", "locals"):
                    r.dinamicos.append((n.lineno, f.id + "()"))
            elif isinstance(f, ast.Attribute):
                raiz = _raiz_nombre(f.value)
                if raiz:
                    r.mutaciones.append((raiz, False))
                ip = _llamada_ipython(n)
                if ip and ip[0] in _DINAMICOS_IPYTHON:
                    r.dinamicos.append((n.lineno, "get_ipython().{}".format(ip[0])))
    r.ligados -= r.globales
    r.mutaciones = [(raiz, siempre) for raiz, siempre in r.mutaciones if raiz not in de_comprension]
    return r


def _ligados(nodos: Iterable[ast.AST]) -> Tuple[Set[str], Set[str]]:
    """(names the code binds in its own scope, names it declares global)."""
    r = _resumir(nodos)
    return r.ligados, r.globales


def _parametros(args: ast.arguments) -> List[str]:
    nombres = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    nombres += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return nombres


def _cadena(nodo: ast.AST) -> Tuple[ast.AST, List[str], List[ast.Attribute]]:
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


# --------------------------------------------------------------------------- units of top-level code


@dataclasses.dataclass
class _Unidad:
    """A top-level piece of code: a def/class, a statement, a compound statement's header, an import alias."""

    id: int
    ns: str
    celda: Celda
    nodos: List[ast.AST]
    mapa: List[int]
    nombre: str
    directa: bool = False
    liga: FrozenSet[str] = frozenset()
    importa: Optional[Tuple[str, str, str]] = None  # (bound name, bound path, full module imported)
    estrella: Optional[str] = None  # module of a ``from m import *``

    def linea(self, lineno: Optional[int]) -> int:
        if not self.mapa:
            return 1
        i = (lineno or 1) - 1
        return self.mapa[min(max(i, 0), len(self.mapa) - 1)]


@dataclasses.dataclass
class _Analisis:
    """What one unit does, whichever test reaches it."""

    marcas: List[Tuple[int, str, str]]  # (original line, construct, where)
    cargas: List[Tuple[str, bool, int]]  # (global name, at call time?, line)
    cargas_modulo: Set[Tuple[str, str]]  # (student module, attribute)
    modulos_enteros: Set[str]  # student modules used whole
    incompleto: Optional[str] = None


class _Cuaderno:
    """Every binding of every cell of one notebook, and the analysis of each unit on demand."""

    def __init__(self, celdas: Sequence[Celda]):
        self.celdas = list(celdas)
        self.unidades: List[_Unidad] = []
        self.ligaduras: Dict[Tuple[str, str], List[int]] = collections.defaultdict(list)
        self.rutas_import: Dict[Tuple[str, str], Set[str]] = collections.defaultdict(set)
        self.alias: Dict[Tuple[str, str], List[Tuple[str, Tuple[str, ...]]]] = collections.defaultdict(list)
        self.unidades_alias: Set[Tuple[str, str, int]] = set()
        self.estrellas: Dict[str, List[Tuple[int, str]]] = collections.defaultdict(list)
        self.mutaciones: List[Tuple[str, str, int, bool]] = []  # (ns, root, unit, even on a module)
        self.dinamicos: List[str] = []
        self.modulos: Dict[str, List[int]] = collections.defaultdict(list)  # %%writefile modules -> units
        self.por_celda: Dict[int, List[int]] = collections.defaultdict(list)  # units of the notebook's cells
        self.arboles: Dict[int, Optional[ast.Module]] = {}
        self.notas: List[str] = []
        self._rutas: Dict[Tuple[str, str], FrozenSet[str]] = {}
        self._analisis: Dict[int, _Analisis] = {}
        for celda in self.celdas:
            self._leer_celda(celda)
        for ns, raiz, uid, siempre in self.mutaciones:
            if siempre or not self.rutas_import.get((ns, raiz)):
                self._ligar(ns, raiz, uid)
        self._registrar_alias()

    # -- building units

    def _nueva(self, ns, celda, nodos, mapa, nombre, **kw) -> _Unidad:
        u = _Unidad(len(self.unidades), ns, celda, nodos, mapa, nombre, **kw)
        self.unidades.append(u)
        if ns == PRINCIPAL:
            self.por_celda[celda.numero].append(u.id)
        else:
            self.modulos[ns].append(u.id)
        return u

    def _ligar(self, ns: str, nombre: str, uid: int) -> None:
        lista = self.ligaduras[(ns, nombre)]
        if uid not in lista:
            lista.append(uid)

    def _leer_celda(self, celda: Celda) -> None:
        try:
            arbol, mapa = _parsear(celda.fuente)
        except _Ilegible as exc:
            self.arboles[celda.numero] = None
            self.notas.append("celda {}: no se pudo leer ({}); se omite (no define nada)".format(
                celda.numero, seguro(exc, 40)))
            return
        self.arboles[celda.numero] = arbol
        self._fuente_actual = celda.fuente
        self._codigo(arbol, mapa, celda, PRINCIPAL, 0)

    def _codigo(self, arbol: ast.Module, mapa: List[int], celda: Celda, ns: str, profundidad: int) -> None:
        """Units of a parsed cell (or cell magic body), unwrapping cell magics."""
        magia = _magia_de_celda(arbol)
        if magia is None:
            self._unidades(arbol.body, mapa, celda, ns, True)
            return
        nombre, linea, cuerpo = magia
        inicio = mapa[0] if mapa else 1
        if nombre == "writefile":
            modulo = _modulo_writefile(linea)
            if modulo is not None:
                self._cuerpo(cuerpo, inicio, celda, modulo, profundidad, "%%writefile")
        elif nombre in MAGIAS_CON_CODIGO:
            self._cuerpo(cuerpo, inicio, celda, ns, profundidad, "%%" + nombre)
        elif nombre not in MAGIAS_SIN_PYTHON:
            self.notas.append("celda {}: magia %%{} desconocida; su cuerpo no se analiza".format(
                celda.numero, seguro(nombre, 40)))

    def _cuerpo(self, cuerpo: str, inicio: int, celda: Celda, ns: str, profundidad: int, que: str) -> None:
        if profundidad > 5:
            self.notas.append("celda {}: magias anidadas demasiado profundo; se omite".format(celda.numero))
            return
        try:
            arbol, mapa = _parsear(cuerpo)
        except _Ilegible as exc:
            self.notas.append("celda {}: el cuerpo de {} no se pudo leer ({}); se omite".format(
                celda.numero, que, seguro(exc, 40)))
            return
        self._codigo(arbol, [inicio + i for i in mapa], celda, ns, profundidad + 1)

    def _unidades(self, sentencias: Sequence[ast.stmt], mapa, celda, ns, directa: bool) -> None:
        """Split top-level statements into units and record what each binds."""
        for st in sentencias:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                que = "clase" if isinstance(st, ast.ClassDef) else "función"
                u = self._nueva(ns, celda, [st], mapa, "{} {}".format(que, st.name), directa=directa,
                                liga=frozenset({st.name}))
                self._ligar(ns, st.name, u.id)
                self._globales_internos(st, ns, u.id)
            elif isinstance(st, ast.Import):
                for a in st.names:
                    nombre = a.asname or a.name.split(".")[0]
                    ruta = a.name if a.asname else nombre
                    self._importar(ns, celda, mapa, st, nombre, ruta, a.name, directa)
            elif isinstance(st, ast.ImportFrom):
                modulo = "." * (st.level or 0) + (st.module or "")
                for a in st.names:
                    if a.name == "*":
                        u = self._nueva(ns, celda, [st], mapa, "from {} import *".format(modulo), estrella=modulo)
                        self.estrellas[ns].append((u.id, modulo))
                    else:
                        self._importar(ns, celda, mapa, st, a.asname or a.name, modulo + "." + a.name, modulo,
                                       directa)
            elif isinstance(st, (ast.For, ast.AsyncFor)):
                self._cabecera(ns, celda, mapa, st, [st.target, st.iter], "for")
                self._unidades(st.body + st.orelse, mapa, celda, ns, False)
            elif isinstance(st, (ast.While, ast.If)):
                self._cabecera(ns, celda, mapa, st, [st.test], "if" if isinstance(st, ast.If) else "while")
                self._unidades(st.body + st.orelse, mapa, celda, ns, False)
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                self._cabecera(ns, celda, mapa, st, list(st.items), "with", directa)
                self._unidades(st.body, mapa, celda, ns, directa)
            elif isinstance(st, ast.Try) or type(st).__name__ == "TryStar":
                self._unidades(st.body, mapa, celda, ns, False)
                for h in st.handlers:
                    self._cabecera(ns, celda, mapa, h, [h.type] if h.type else [], "except",
                                   extra={h.name} if h.name else set())
                    self._unidades(h.body, mapa, celda, ns, False)
                self._unidades(st.orelse + st.finalbody, mapa, celda, ns, False)
            elif isinstance(st, ast.Match):
                self._cabecera(ns, celda, mapa, st, [st.subject], "match")
                for caso in st.cases:
                    self._cabecera(ns, celda, mapa, caso, [caso.pattern] + ([caso.guard] if caso.guard else []),
                                   "case")
                    self._unidades(caso.body, mapa, celda, ns, False)
            elif isinstance(st, (ast.Global, ast.Nonlocal, ast.Pass, ast.Break, ast.Continue)):
                continue
            else:
                self._sentencia(ns, celda, mapa, st, directa)

    def _importar(self, ns, celda, mapa, st, nombre, ruta, completo, directa) -> None:
        rutas = _rutas_de_import(ruta, self._modulos_escritos())
        u = self._nueva(ns, celda, [st], mapa, "import {}".format(ruta), directa=directa,
                        liga=frozenset({nombre}), importa=(nombre, ruta, completo))
        self._ligar(ns, nombre, u.id)
        self.rutas_import[(ns, nombre)].update(rutas)

    def _modulos_escritos(self) -> Set[str]:
        """Modules that %%writefile cells write, known up front (a module may be imported before)."""
        if not hasattr(self, "_escritos"):
            self._escritos = set()
            for c in self.celdas:
                m = re.match(r"\s*%%writefile\s+(.*)", c.fuente if isinstance(c.fuente, str) else "")
                if m:
                    nombre = _modulo_writefile(m.group(1).splitlines()[0] if m.group(1) else "")
                    if nombre:
                        self._escritos.add(nombre)
        return self._escritos

    def _cabecera(self, ns, celda, mapa, st, nodos, que, directa=False, extra=()) -> None:
        self._registrar(ns, celda, mapa, nodos, "cabecera de {}".format(que), directa, set(extra))

    def _registrar(self, ns, celda, mapa, nodos, nombre, directa, extra=frozenset()) -> None:
        """A unit of plain statements or expressions: what it binds, mutates, defines dynamically."""
        r = _resumir(nodos)
        liga = (r.ligados | set(extra)) - r.globales
        u = self._nueva(ns, celda, nodos, mapa, nombre, directa=directa, liga=frozenset(liga))
        for n in liga:
            self._ligar(ns, n, u.id)
        for raiz, siempre in r.mutaciones:
            self.mutaciones.append((ns, raiz, u.id, siempre))
        for lineno, que in r.dinamicos:
            if que in ("exec", "eval", "globals()", "vars()", "locals()") and self.ligaduras.get((ns, que.rstrip("()"))):
                continue  # the student's own function of that name
            self.dinamicos.append("celda {}, línea {}: {} puede definir nombres que el análisis no ve".format(
                celda.numero, u.linea(lineno), seguro(que, 60)))

    def _sentencia(self, ns, celda, mapa, st, directa) -> None:
        magia = self._magia_de_linea(st)
        if magia is not None and isinstance(st, ast.Expr):
            nombre, arg = magia
            if nombre in MAGIAS_CON_CODIGO and arg is not None:
                try:
                    sub, _ = _parsear(arg)
                except _Ilegible:
                    return
                linea = mapa[min(max(st.lineno - 1, 0), len(mapa) - 1)] if mapa else 1
                self._unidades(sub.body, [linea], celda, ns, directa)  # a one-line map: every line there
                return
            if nombre == "run" and arg:
                modulo = _modulo_writefile(arg)
                if modulo and modulo in self._modulos_escritos():
                    u = self._nueva(ns, celda, [st], mapa, "%run {}".format(modulo), estrella="@" + modulo)
                    self.estrellas[ns].append((u.id, "@" + modulo))
                    return
                self.dinamicos.append("celda {}: %run {} ejecuta un archivo que no está en el notebook".format(
                    celda.numero, seguro(arg, 60)))
        self._registrar(ns, celda, mapa, [st], "código de la celda", directa)

    @staticmethod
    def _magia_de_linea(st) -> Optional[Tuple[str, Optional[str]]]:
        valor = st.value if isinstance(st, (ast.Expr, ast.Assign)) else None
        ip = _llamada_ipython(valor) if valor is not None else None
        if not ip or ip[0] != "run_line_magic" or len(ip[1].args) != 2:
            return None
        return _cte(ip[1].args[0]) or "", _cte(ip[1].args[1])

    def _globales_internos(self, st, ns, uid) -> None:
        """``global x`` inside a function (at any depth) makes that function a binding of x."""
        for n in ast.walk(st) if "global" in self._fuente_actual else ():
            if isinstance(n, ast.Global):
                for nombre in n.names:
                    self._ligar(ns, nombre, uid)

    # -- resolution

    def ligado(self, ns: str, nombre: str) -> bool:
        """Whether the notebook (or module) binds ``nombre`` itself (star imports do not count: they
        cannot hide a builtin such as ``eval`` from the review)."""
        return bool(self.ligaduras.get((ns, nombre)))

    def ligaduras_de(self, ns: str, nombre: str, _vistos=None) -> List[int]:
        """Units that may bind ``nombre`` in ``ns``: direct bindings, else the star imports."""
        directas = self.ligaduras.get((ns, nombre))
        if directas:
            return list(directas)
        if nombre in BUILTINS or nombre in IPYTHON_BUILTINS:
            return []
        vistos = _vistos or set()
        out = []
        for uid, modulo in self.estrellas.get(ns, ()):
            out.append(uid)
            if modulo.startswith("@") and modulo[1:] not in vistos:
                vistos.add(modulo[1:])
                out += self.ligaduras_de(modulo[1:], nombre, vistos)
        return out

    def rutas(self, ns: str, nombre: str, _pila=()) -> FrozenSet[str]:
        """Dotted module paths a global name may hold (imports, aliases, star imports); '@m' = student module m."""
        clave = (ns, nombre)
        if clave in self._rutas:
            return self._rutas[clave]
        if clave in _pila or len(_pila) > 20:
            return frozenset()
        pila = _pila + (clave,)
        rutas = set(self.rutas_import.get(clave, ()))
        for raiz, attrs in self.alias.get(clave, ()):
            for p in self.rutas(ns, raiz, pila):
                rutas.add(".".join((p,) + attrs))
        if not self.ligaduras.get(clave) and nombre not in BUILTINS and nombre not in IPYTHON_BUILTINS:
            for _, modulo in self.estrellas.get(ns, ()):
                rutas.add(modulo + "." + nombre)
        for p in list(rutas):
            if p.startswith("@") and "." in p:
                modulo, _, resto = p[1:].partition(".")
                cabeza, _, cola = resto.partition(".")
                for q in self.rutas(modulo, cabeza, pila):
                    rutas.add(q + ("." + cola if cola else ""))
        resultado = frozenset(rutas)
        if not _pila:
            self._rutas[clave] = resultado
        return resultado

    def tiene_valor_no_modulo(self, ns: str, nombre: str) -> bool:
        """Whether some binding of ``nombre`` is neither an import nor an alias (``t = torch``)."""
        return any(self.unidades[u].importa is None and (ns, nombre, u) not in self.unidades_alias
                   for u in self.ligaduras.get((ns, nombre), ()))

    def analisis(self, uid: int) -> _Analisis:
        if uid not in self._analisis:
            self._analisis[uid] = _Visitante(self, self.unidades[uid]).correr()
        return self._analisis[uid]

    def _registrar_alias(self) -> None:
        """``t = torch`` / ``F = torch.nn.functional``: the name holds that module (after all imports)."""
        for u in self.unidades:
            if u.importa is not None or len(u.nodos) != 1:
                continue
            st = u.nodos[0]
            if isinstance(st, ast.Assign):
                objetivos, valor = st.targets, st.value
            elif isinstance(st, ast.AnnAssign) and st.value is not None:
                objetivos, valor = [st.target], st.value
            else:
                continue
            raiz, attrs, _ = _cadena(valor)
            if not isinstance(raiz, ast.Name):
                continue
            for t in objetivos:
                if isinstance(t, ast.Name):
                    self.alias[(u.ns, t.id)].append((raiz.id, tuple(attrs)))
                    self.unidades_alias.add((u.ns, t.id, u.id))


# --------------------------------------------------------------------------- analysing one unit


@dataclasses.dataclass
class _Ambito:
    tipo: str  # "funcion", "clase", "comprension"
    locales: Set[str]
    nombre: str
    alias: Dict[str, Set[str]] = dataclasses.field(default_factory=dict)
    yo: Optional[str] = None  # the method's self
    metodos: FrozenSet[str] = frozenset()  # methods of the class (in a class scope or a method)


class _Visitante:
    """Iterative walk of one unit with Python's scoping: marks, and the global names it loads."""

    def __init__(self, cuaderno: _Cuaderno, unidad: _Unidad):
        self.c = cuaderno
        self.u = unidad
        self.ambitos: List[_Ambito] = []
        self.fijas: List[int] = []
        self.res = _Analisis([], [], set(), set())
        self.llamadas: Set[int] = set()  # ids of nodes that are called
        self.ok_backward: Set[int] = set()
        self.ok_ruta: Set[int] = set()
        self.ok_nombre: Set[int] = set()
        self.raiz_juzgada: Set[int] = set()  # Names whose module path a whole chain already judged

    # -- driver

    def correr(self) -> _Analisis:
        try:
            if self.u.importa is not None or self.u.estrella is not None:
                self._unidad_import()
            else:
                self._recorrer_unidad()
        except (RecursionError, MemoryError) as exc:  # ast.unparse and friends on odd trees
            self.res.incompleto = type(exc).__name__
        return self.res

    def _recorrer_unidad(self) -> None:
        pila: List[Tuple[str, object]] = [("v", n) for n in reversed(self.u.nodos)]
        while pila:
            op, x = pila.pop()
            if op == "v":
                self._visitar(x, pila)
            elif op == "entrar":
                self.ambitos.append(self._abrir(*x))
            elif op == "salir":
                self.ambitos.pop()
            elif op == "fija":
                self.fijas.append(x)
            elif op == "suelta":
                self.fijas.pop()

    def _visitar(self, n: ast.AST, pila) -> None:
        hijos: List = []
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = n.args
            previos = list(n.decorator_list) + list(a.defaults) + [d for d in a.kw_defaults if d]
            previos += [x.annotation for x in a.posonlyargs + a.args + a.kwonlyargs if x.annotation]
            previos += [n.returns] if n.returns else []
            hijos = ([("v", x) for x in previos] + [("entrar", ("funcion", n))] + [("v", s) for s in n.body]
                     + [("salir", None)])
        elif isinstance(n, ast.Lambda):
            a = n.args
            previos = list(a.defaults) + [d for d in a.kw_defaults if d]
            hijos = [("v", x) for x in previos] + [("entrar", ("funcion", n)), ("v", n.body), ("salir", None)]
        elif isinstance(n, ast.ClassDef):
            previos = list(n.decorator_list) + list(n.bases) + [k.value for k in n.keywords]
            hijos = ([("v", x) for x in previos] + [("entrar", ("clase", n))] + [("v", s) for s in n.body]
                     + [("salir", None)])
        elif isinstance(n, _COMPRENSIONES):
            gens = n.generators
            cuerpo = [n.key, n.value] if isinstance(n, ast.DictComp) else [n.elt]
            resto = [gens[0].target] + list(gens[0].ifs)
            for g in gens[1:]:
                resto += [g.iter, g.target] + list(g.ifs)
            hijos = ([("v", gens[0].iter), ("entrar", ("comprension", n))] + [("v", x) for x in resto + cuerpo]
                     + [("salir", None)])
        elif isinstance(n, ast.Name):
            self._nombre(n)
        elif isinstance(n, ast.Attribute):
            hijos = [("v", x) for x in self._atributo(n)]
        elif isinstance(n, ast.Call):
            hijos = [("v", x) for x in self._llamada(n)]
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            self._import_interno(n)
        elif isinstance(n, _Bloque):
            hijos = [("fija", n.linea)] + [("v", x) for x in n.cuerpo] + [("suelta", None)]
        else:
            hijos = [("v", x) for x in _hijos(n)]
        pila.extend(reversed(hijos))

    # -- scopes

    def _abrir(self, tipo: str, n: ast.AST) -> _Ambito:
        padre = self.ambitos[-1] if self.ambitos else None
        if tipo == "comprension":
            locales = set()
            for g in n.generators:
                locales |= {x.id for x in ast.walk(g.target) if isinstance(x, ast.Name)}
            return _Ambito("comprension", locales, padre.nombre if padre else self.u.nombre,
                           yo=padre.yo if padre else None, metodos=padre.metodos if padre else frozenset())
        if tipo == "clase":
            locales, _ = _ligados(n.body)
            metodos = frozenset(s.name for s in n.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
            return _Ambito("clase", locales, self._nombre_cualificado(n.name), metodos=metodos)
        # a function or a lambda
        params = _parametros(n.args)
        cuerpo = n.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else [n.body]
        resumen = _resumir(cuerpo)
        locales = resumen.ligados | set(params)
        nombre = self._nombre_cualificado(n.name if hasattr(n, "name") else "<lambda>")
        yo, metodos = (padre.yo, padre.metodos) if padre else (None, frozenset())
        if padre is not None and padre.tipo == "clase" and not isinstance(n, ast.Lambda):
            estatico = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in n.decorator_list)
            yo = params[0] if params and not estatico else None
            metodos = padre.metodos
        elif yo is not None and yo in params:
            yo = None  # rebound by a nested function's parameter
        ambito = _Ambito("funcion", locales, nombre, yo=yo, metodos=metodos)
        self.ambitos.append(ambito)  # so that local aliases resolve through this scope
        try:
            ambito.alias = self._alias_locales(resumen)
        finally:
            self.ambitos.pop()
        return ambito

    def _nombre_cualificado(self, nombre: str) -> str:
        previos = [a.nombre for a in self.ambitos if a.tipo != "comprension"]
        return seguro((previos[-1] + "." if previos else "") + nombre, 80)

    def _alias_locales(self, resumen: _Resumen) -> Dict[str, Set[str]]:
        """Local names that hold modules: local imports and ``t = torch`` inside the function."""
        alias: Dict[str, Set[str]] = collections.defaultdict(set)
        escritos = self.c._modulos_escritos()
        for nombre, ruta in resumen.importaciones:
            alias[nombre].update(_rutas_de_import(ruta, escritos))
        for s in resumen.asignaciones:
            raiz, attrs, _ = _cadena(s.value)
            if isinstance(raiz, ast.Name):
                for p in self._rutas_de(raiz.id, alias):
                    for t in s.targets:
                        if isinstance(t, ast.Name):
                            alias[t.id].add(".".join([p] + attrs))
        return dict(alias)

    def _local(self, nombre: str) -> Optional[_Ambito]:
        ultimo = len(self.ambitos) - 1
        for i in range(ultimo, -1, -1):
            a = self.ambitos[i]
            if a.tipo == "clase" and i != ultimo:
                continue
            if nombre in a.locales:
                return a
        return None

    def _rutas_de(self, nombre: str, extra: Optional[Dict[str, Set[str]]] = None) -> Set[str]:
        if extra is not None and nombre in extra:
            return set(extra[nombre])
        a = self._local(nombre)
        if a is not None:
            return set(a.alias.get(nombre, ()))
        return set(self.c.rutas(self.u.ns, nombre))

    def _tardio(self) -> bool:
        return any(a.tipo == "funcion" for a in self.ambitos)

    def _es_yo(self, nodo) -> bool:
        yo = self.ambitos[-1].yo if self.ambitos else None
        return yo is not None and isinstance(nodo, ast.Name) and nodo.id == yo

    @staticmethod
    def _es_super(nodo) -> bool:
        return isinstance(nodo, ast.Call) and isinstance(nodo.func, ast.Name) and nodo.func.id == "super"

    def _builtin(self, nombre: str) -> bool:
        """Whether a name that is not local is Python's (or IPython's) own, not the student's."""
        return self._local(nombre) is None and not self.c.ligado(self.u.ns, nombre)

    # -- marks

    def _linea(self, nodo) -> int:
        if self.fijas:
            return self.fijas[-1]
        return self.u.linea(getattr(nodo, "lineno", None))

    def _marcar(self, nodo, construccion: str) -> None:
        lugar = self.ambitos[-1].nombre if self.ambitos else self.u.nombre
        self.res.marcas.append((self._linea(nodo), seguro(construccion), lugar))

    # -- rules

    def _nombre(self, n: ast.Name) -> None:
        if not isinstance(n.ctx, ast.Load) and not (_es_dunder(n.id) and n.id in ("__builtins__", "__class__")):
            return
        if self._local(n.id) is not None:
            return
        if isinstance(n.ctx, ast.Load):
            self.res.cargas.append((n.id, self._tardio(), self._linea(n)))
            if id(n) not in self.raiz_juzgada and id(n) not in self.ok_ruta:
                for p in sorted(self._rutas_de(n.id)):
                    construccion = None if p.startswith("@") else juzgar_ruta(p)
                    if construccion:
                        self._marcar(n, construccion)
                        break
        if not self._builtin(n.id) or id(n) in self.ok_nombre:
            return
        if _es_dunder(n.id) and n.id not in NOMBRES_DUNDER_OK and n.id not in DINAMICOS:
            self._marcar(n, "acceso a un nombre dunder ({})".format(n.id))
        elif n.id in DINAMICOS:
            self._marcar(n, "código dinámico ({})".format(n.id))
        elif n.id in POR_NOMBRE:
            self._marcar(n, "acceso a variables por nombre ({}())".format(n.id))
        elif n.id in ATRIBUTO_POR_NOMBRE:
            self._marcar(n, "{} usado como valor".format(n.id))
        elif n.id == "get_ipython":
            self._marcar(n, "código dinámico (get_ipython)")

    def _atributo(self, n: ast.Attribute) -> List[ast.AST]:
        """Judge a whole attribute chain at once; returns what is left to visit (its root)."""
        raiz, attrs, nodos = _cadena(n)
        self._juzgar_cadena(raiz, attrs, nodos, n)
        return [raiz]

    def _juzgar_cadena(self, raiz, attrs: List[str], nodos: List[Optional[ast.AST]], donde) -> None:
        rutas: Set[str] = set()
        otro_valor = True
        if isinstance(raiz, ast.Name):
            rutas = self._rutas_de(raiz.id)
            if rutas:
                self.raiz_juzgada.add(id(raiz))
                otro_valor = (self._local(raiz.id) is None
                              and self.c.tiene_valor_no_modulo(self.u.ns, raiz.id))
        for p in sorted(rutas):
            if p.startswith("@"):
                modulo, _, resto = p[1:].partition(".")
                miembro = (resto.split(".") + attrs)[0] if resto else attrs[0]
                self.res.cargas_modulo.add((modulo, miembro))
                continue
            if any(id(x) in self.ok_ruta for x in nodos if x is not None):
                continue
            construccion = juzgar_ruta(p + "." + ".".join(attrs))
            if construccion:
                self._marcar(donde, construccion)
                break
        if rutas and not otro_valor:
            return
        es_yo, es_super = self._es_yo(raiz), self._es_super(raiz)
        escritura = isinstance(getattr(donde, "ctx", None), (ast.Store, ast.Del))
        for i, attr in enumerate(attrs):
            siguiente = attrs[i + 1] if i + 1 < len(attrs) else None
            nodo = nodos[i]
            self._regla_atributo(attr, nodo, donde, es_yo and i == 0, es_super and i == 0, siguiente,
                                 nodo is not None and id(nodo) in self.llamadas, escritura and siguiente is None)

    def _regla_atributo(self, attr, nodo, donde, de_yo, de_super, siguiente, llamado, escrito=False) -> None:
        if _es_dunder(attr):
            if attr in ATRIBUTOS_DUNDER_OK:
                return
            if attr == "__class__" and siguiente in ("__name__", "__qualname__"):
                return
            if de_super and llamado:
                return
            if de_yo and attr in (self.ambitos[-1].metodos if self.ambitos else ()):
                return
            self._marcar(donde, "acceso a un atributo dunder ({})".format(attr))
            return
        if de_yo or de_super:
            return
        if attr == "backward":
            if not escrito and (nodo is None or id(nodo) not in self.ok_backward):
                self._marcar(donde, "Tensor.backward()")
            return
        if nodo is not None and id(nodo) in self.ok_ruta:
            return
        if attr in ATRIBUTOS_PROHIBIDOS:
            self._marcar(donde, ATRIBUTOS_PROHIBIDOS[attr])
        elif attr in ATRIBUTOS_SOSPECHOSOS:
            self._marcar(donde, "posible torch.{0} (atributo .{0})".format(attr))

    def _llamada(self, n: ast.Call) -> List[ast.AST]:
        """Rules that need the call's arguments; returns the children left to visit."""
        f = n.func
        self.llamadas.add(id(f))
        ip = _llamada_ipython(n)
        if ip is not None and self._builtin("get_ipython"):
            return self._regla_ipython(ip[0], n)
        if isinstance(f, ast.Name) and self._builtin(f.id):
            if f.id in ATRIBUTO_POR_NOMBRE:
                self.ok_nombre.add(id(f))
                self._regla_getattr(f.id, n)
            elif f.id == "print":
                for a in n.args:
                    if isinstance(a, ast.Call) and isinstance(a.func, ast.Name) and a.func.id in POR_NOMBRE:
                        self.ok_nombre.add(id(a.func))
        if self._apaga_autograd(n):
            self.ok_ruta.add(id(f))
        if isinstance(f, ast.Attribute):
            if f.attr == "backward":
                self._regla_backward(f, n)
            elif f.attr in ("attrgetter", "methodcaller"):
                self._regla_operator(f, n)
        return [f] + list(n.args) + list(n.keywords)

    def _apaga_autograd(self, n: ast.Call) -> bool:
        """``torch.set_grad_enabled(False)``: switches autograd off, like ``torch.no_grad()``."""
        if len(n.args) != 1 or n.keywords or not (isinstance(n.args[0], ast.Constant) and n.args[0].value is False):
            return False
        f = n.func
        if isinstance(f, ast.Attribute):
            return f.attr == "set_grad_enabled"
        rutas = self._rutas_de(f.id) if isinstance(f, ast.Name) else set()
        return bool(rutas) and all(p.endswith(".set_grad_enabled") for p in rutas)

    def _regla_backward(self, f: ast.Attribute, n: ast.Call) -> None:
        """``red.backward(x, y, y_pred)`` is the student's network; ``perdida.backward()`` is autograd."""
        receptor = f.value
        if self._es_yo(receptor) or self._es_super(receptor):
            self.ok_backward.add(id(f))
            return
        raiz, _, _ = _cadena(receptor)
        if isinstance(raiz, ast.Name) and self._rutas_de(raiz.id):
            return  # a module's backward: judged as a dotted path
        posicionales = n.args
        honesta = (len(posicionales) + len(n.keywords) >= 2
                   and not any(isinstance(a, (ast.Starred, ast.Constant)) for a in posicionales)
                   and not any(k.arg is None or k.arg in _BACKWARD_KW for k in n.keywords))
        if not honesta:
            self._marcar(n, "Tensor.backward()")
        self.ok_backward.add(id(f))

    def _regla_getattr(self, cual: str, n: ast.Call) -> None:
        if len(n.args) < 2 or any(isinstance(a, ast.Starred) for a in n.args[:2]) or any(k.arg is None for k in n.keywords):
            if not (len(n.args) >= 2 and self._es_yo(n.args[0])):
                self._marcar(n, "{} con argumentos calculados".format(cual))
            return
        objeto, nombre = n.args[0], n.args[1]
        texto = _cte(nombre)
        if texto is not None:
            raiz, attrs, nodos = _cadena(objeto)
            self._juzgar_cadena(raiz, attrs + [texto], nodos + [None], n)
            return
        if self._es_yo(objeto):
            return  # the student's own object: getattr(self, f"W{k}")
        raiz, _, _ = _cadena(objeto)
        if isinstance(raiz, ast.Name) and self._rutas_de(raiz.id):
            self._marcar(n, "{} con un nombre calculado sobre un módulo".format(cual))
        else:
            self._marcar(n, "{} con un nombre calculado".format(cual))

    def _regla_operator(self, f: ast.Attribute, n: ast.Call) -> None:
        raiz, attrs, _ = _cadena(f)
        if not (isinstance(raiz, ast.Name) and any(p.startswith("operator") for p in self._rutas_de(raiz.id))):
            return
        nombres = [_cte(a) for a in n.args[:1 if f.attr == "methodcaller" else None]]
        if any(x is None for x in nombres) or any(isinstance(a, ast.Starred) for a in n.args):
            self._marcar(n, "operator.{} con un nombre calculado".format(f.attr))
            return
        for texto in nombres:
            partes = texto.split(".")
            for i, p in enumerate(partes):
                if f.attr == "methodcaller" and p == "backward":
                    self._marcar(n, "Tensor.backward()")
                else:
                    self._regla_atributo(p, None, n, False, False, partes[i + 1] if i + 1 < len(partes) else None, False)

    def _regla_ipython(self, metodo: str, n: ast.Call) -> List[ast.AST]:
        """``get_ipython().x(...)``: magics and shell commands; harmless ones at top level only."""
        tardio = self._tardio()
        args = [_cte(a) for a in n.args]
        visitar: List[ast.AST] = []
        if metodo == "run_line_magic" and len(args) == 2 and args[0] is not None:
            magia, arg = args
            if magia in MAGIAS_CON_CODIGO and arg is not None:
                try:
                    sub, _ = _parsear(arg)
                    visitar = sub.body
                except _Ilegible:
                    pass
            if tardio or (magia not in MAGIAS_CON_CODIGO and magia not in MAGIAS_INOFENSIVAS):
                self._marcar(n, "código dinámico (magia %{})".format(magia))
        elif metodo in ("system", "getoutput") and len(args) == 1 and args[0] is not None:
            comando = args[0].split()[0] if args[0].split() else ""
            if tardio or comando not in COMANDOS_INOFENSIVOS:
                self._marcar(n, "comando de sistema (!{})".format(args[0]))
        else:
            self._marcar(n, "código dinámico (get_ipython().{})".format(metodo))
        if not visitar:
            return list(n.args)
        return [_Bloque(self._linea(n), visitar)]

    def _import_interno(self, n) -> None:
        """An import inside reached code runs when that code runs: the whole module is judged."""
        if isinstance(n, ast.Import):
            rutas = [a.name for a in n.names]
        else:
            modulo = "." * (n.level or 0) + (n.module or "")
            rutas = [modulo] + [modulo + "." + a.name for a in n.names if a.name != "*"]
        for r in rutas:
            cabeza = r.split(".")[0]
            if cabeza in self.c._modulos_escritos():
                self.res.modulos_enteros.add(cabeza)
                continue
            construccion = juzgar_ruta(r)
            if construccion:
                self._marcar(n, construccion)
                break

    def _unidad_import(self) -> None:
        u = self.u
        if u.estrella is not None:
            if u.estrella.startswith("@"):
                self.res.modulos_enteros.add(u.estrella[1:])
                return
            construccion = juzgar_ruta(u.estrella) if u.estrella else "módulo desconocido: ."
            if construccion:
                self.res.marcas.append((u.linea(u.nodos[0].lineno), construccion, "import *"))
            return
        nombre, ruta, completo = u.importa
        linea = u.linea(u.nodos[0].lineno)
        for p in sorted(self.c.rutas_import.get((u.ns, nombre), ()) & {ruta, "@" + ruta}):
            if p.startswith("@"):
                modulo, _, resto = p[1:].partition(".")
                if resto:
                    self.res.cargas_modulo.add((modulo, resto.split(".")[0]))
                else:
                    self.res.modulos_enteros.add(modulo)
                continue
            construccion = juzgar_ruta(p)
            if construccion:
                detalle = "import {}".format(seguro(completo, 60)) + (
                    " como {}".format(seguro(nombre, 40)) if nombre != p.split(".")[-1] else "")
                self.res.marcas.append((linea, construccion, detalle))


class _Bloque(ast.AST):
    """Code given to a line magic (``%time ...``): visited in place, every line at the magic's line."""

    _fields = ()

    def __init__(self, linea: int, cuerpo: List[ast.AST]):
        super().__init__()
        self.linea = linea
        self.cuerpo = cuerpo


# --------------------------------------------------------------------------- reviewing the parts


def _celda_del_test(celdas: Sequence[Celda], prueba: str) -> Optional[int]:
    """Index (in ``celdas``) of the test's cell: its grade_id, or a cell that declares it."""
    patron = re.compile(r"""\bevaluar\(\s*["']{}["']\s*\)""".format(re.escape(prueba)))
    for i, c in enumerate(celdas):
        if c.grade_id == prueba or (isinstance(c.fuente, str) and patron.search(c.fuente)):
            return i
    return None


def _asigna(arbol: Optional[ast.Module], fuente: str, variable: str) -> bool:
    """Like :func:`tarea2_grader.tarea2.hidden.asigna`: the cell assigns ``variable`` somewhere."""
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


def _celda_reejecutada(cuaderno: _Cuaderno, prueba: str, variable: str) -> Optional[Celda]:
    """The cell the test re-runs: the last one before the test's cell that assigns ``variable``."""
    celdas = cuaderno.celdas
    fin = _celda_del_test(celdas, prueba)
    previas = celdas[:fin] if fin is not None else celdas
    for c in reversed(previas):
        if c.grade_id == prueba:
            continue
        try:
            if _asigna(cuaderno.arboles.get(c.numero), c.fuente, variable):
                return c
        except RecursionError:
            continue
    return None


def _revisar_parte(cuaderno: _Cuaderno, prueba: str, parte: Parte, revisar_nb: List[str]) -> List[Marca]:
    """Every mark the code of one test can reach (breadth first from its roots)."""
    via: Dict[int, Tuple[str, ...]] = {}
    cola: collections.deque = collections.deque()
    ceder: Dict[int, Set[str]] = {}  # re-run cell units: names an earlier statement of the cell surely bound

    def alcanzar(uid: int, camino: Tuple[str, ...]) -> None:
        if uid not in via:
            via[uid] = camino
            cola.append(uid)

    for nombre in parte.nombres:
        for uid in cuaderno.ligaduras_de(PRINCIPAL, nombre):
            alcanzar(uid, (nombre,))
    if parte.reejecuta:
        celda = _celda_reejecutada(cuaderno, prueba, parte.reejecuta)
        if celda is not None:
            seguros: Set[str] = set()
            for uid in cuaderno.por_celda.get(celda.numero, ()):
                ceder[uid] = set(seguros)
                alcanzar(uid, ("celda {}".format(celda.numero),))
                u = cuaderno.unidades[uid]
                if u.directa:
                    seguros |= u.liga
    marcas: Dict[Tuple[int, int, str], Marca] = {}
    sin_definir: Set[str] = set()
    while cola:
        uid = cola.popleft()
        u = cuaderno.unidades[uid]
        an = cuaderno.analisis(uid)
        camino = via[uid]
        desde = " → ".join(seguro(x, 40) for x in camino[-4:])
        for linea, construccion, lugar in an.marcas:
            clave = (u.celda.numero, linea, construccion)
            if clave not in marcas:
                detalle = seguro("en {}; alcanzado desde {}".format(lugar, desde))
                marcas[clave] = Marca(prueba, u.celda.numero, u.celda.grade_id, linea, construccion, detalle)
        if an.incompleto:
            revisar_nb.append("{}: la celda {} no se pudo analizar entera ({})".format(
                prueba, u.celda.numero, an.incompleto))
        for nombre, tardia, linea in an.cargas:
            if nombre in parte.entradas or (tardia and nombre in parte.prestados):
                continue
            if not tardia and nombre in ceder.get(uid, ()):
                continue
            destinos = cuaderno.ligaduras_de(u.ns, nombre)
            if not destinos and nombre not in BUILTINS and nombre not in IPYTHON_BUILTINS \
                    and (u.ns, nombre) not in sin_definir:
                sin_definir.add((u.ns, nombre))
                revisar_nb.append("{}: usa {} (celda {}, línea {}), que ninguna celda define: no se puede "
                                  "saber qué alcanza".format(prueba, seguro(nombre, 60), u.celda.numero, linea))
            for d in destinos:
                alcanzar(d, camino + (nombre,))
        for modulo, miembro in sorted(an.cargas_modulo):
            for d in cuaderno.ligaduras_de(modulo, miembro):
                alcanzar(d, camino + ("{}.{}".format(modulo, miembro),))
        for modulo in sorted(an.modulos_enteros):
            for d in cuaderno.modulos.get(modulo, ()):
                alcanzar(d, camino + (modulo,))
    return sorted(marcas.values(), key=lambda m: (m.celda, m.linea, m.construccion))


def revisar(celdas: Sequence[Celda], partes: Optional[Dict[str, Parte]] = None) -> Revision:
    """Review a submitted notebook's code cells (in notebook order) against every part of ``partes``."""
    partes = PARTES if partes is None else partes
    cuaderno = _Cuaderno([c for c in celdas if isinstance(c, Celda)])
    revisar_nb: List[str] = []
    marcas: Dict[str, List[Marca]] = {}
    for prueba, parte in partes.items():
        try:
            marcas[prueba] = _revisar_parte(cuaderno, prueba, parte, revisar_nb)
        except (RecursionError, MemoryError) as exc:
            marcas[prueba] = []
            revisar_nb.append("{}: el análisis no terminó ({})".format(prueba, type(exc).__name__))
    nombres_dinamicos = list(dict.fromkeys(cuaderno.dinamicos))
    revisar_nb = nombres_dinamicos + list(dict.fromkeys(revisar_nb))
    return Revision(marcas, [seguro(r, 4 * LIMITE) for r in revisar_nb], list(dict.fromkeys(cuaderno.notas)))


def celdas_de_notebook(nb) -> List[Celda]:
    """The code cells of a notebook (an nbformat node or the JSON dict) as :class:`Celda` records."""
    out = []
    celdas = nb.get("cells", []) if isinstance(nb, dict) else getattr(nb, "cells", [])
    for i, cell in enumerate(celdas if isinstance(celdas, list) else []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        fuente = cell.get("source", "")
        if isinstance(fuente, list):
            fuente = "".join(x for x in fuente if isinstance(x, str))
        if not isinstance(fuente, str):
            fuente = ""
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        gid = nbg.get("grade_id") if isinstance(nbg.get("grade_id"), str) else None
        out.append(Celda(i + 1, gid, fuente, bool(nbg.get("locked"))))
    return out


def revisar_nb(nb, partes: Optional[Dict[str, Parte]] = None) -> Revision:
    """:func:`revisar` on a notebook (an nbformat node or the JSON dict)."""
    return revisar(celdas_de_notebook(nb), partes)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m tarea2_grader.engine.revision cuaderno.ipynb ...``: print every mark, one per line."""
    for ruta in (argv if argv is not None else sys.argv[1:]):
        with open(ruta, encoding="utf-8") as fh:
            rev = revisar_nb(json.load(fh))
        print(ruta)
        for m in rev.todas():
            print("  {}: {}".format(m.prueba, texto_marca(m, con_detalle=True)))
        for r in rev.revisar_notebook:
            print("  revisar: " + r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
