"""What graded code may use: the allowed modules (:data:`MODULOS_PERMITIDOS`), the forbidden places
(:data:`PROHIBIDOS`, :data:`ATRIBUTOS_PROHIBIDOS`), Python's and IPython's own names and magics, and
:func:`juzgar_ruta`, which judges one dotted module path."""
from __future__ import annotations

import builtins
import re
from typing import Dict, FrozenSet, List, Optional, Set

from tarea2_grader.engine.review.records import seguro

__all__ = ["MODULOS_PERMITIDOS", "PROHIBIDOS", "TORCH_RAMAS", "juzgar_ruta", "rutas_de_import"]


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
BACKWARD_KW = frozenset({"gradient", "retain_graph", "create_graph", "inputs", "grad_tensors"})

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


# --------------------------------------------------------------------------- judging a dotted name


def es_dunder(nombre: str) -> bool:
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
        if es_dunder(p) and p not in ATRIBUTOS_DUNDER_OK:
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
        if p.startswith("_") and not es_dunder(p):
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


# --------------------------------------------------------------------------- imports


def _conocido(cabeza: str) -> bool:
    """Whether a top-level module name is one the allow-list knows (allowed or forbidden)."""
    return any(m.split(".")[0] == cabeza for m in MODULOS_PERMITIDOS) or \
        any(m.split(".")[0] == cabeza for m in PROHIBIDOS)


def rutas_de_import(ruta: str, escritos: Set[str]) -> Set[str]:
    """What an imported dotted name may be: a student's %%writefile module ('@' + path), the real
    module, or both when a written file shadows a module the allow-list knows (``tqdm.py``)."""
    cabeza = ruta.split(".")[0]
    if cabeza in escritos:
        return {"@" + ruta, ruta} if _conocido(cabeza) else {"@" + ruta}
    return {ruta}

