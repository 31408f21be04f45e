"""The walk of one unit of code with Python's scoping (:class:`Visitante`): the forbidden constructs it
uses (:mod:`tarea2_grader.engine.review.allowlist`) and the global names it loads (:class:`Analisis`)."""
from __future__ import annotations

import ast
import collections
import dataclasses
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Optional, Set, Tuple

from tarea2_grader.engine.review.allowlist import (ATRIBUTO_POR_NOMBRE, ATRIBUTOS_DUNDER_OK, ATRIBUTOS_PROHIBIDOS,
                                                   ATRIBUTOS_SOSPECHOSOS, BACKWARD_KW, COMANDOS_INOFENSIVOS, DINAMICOS,
                                                   MAGIAS_CON_CODIGO, MAGIAS_INOFENSIVAS, NOMBRES_DUNDER_OK, POR_NOMBRE,
                                                   es_dunder, juzgar_ruta, rutas_de_import)
from tarea2_grader.engine.review.records import seguro
from tarea2_grader.engine.review.source import (COMPRENSIONES, Ilegible, Resumen, cadena, cte, ligados,
                                                llamada_ipython, nodos_hijos, parametros, parsear, resumir)

if TYPE_CHECKING:  # the notebook that builds the visitor (units imports this module)
    from tarea2_grader.engine.review.units import Cuaderno, Unidad

__all__ = ["Analisis", "Visitante"]


# --------------------------------------------------------------------------- what one unit does


@dataclasses.dataclass
class Analisis:
    """What one unit does, whichever test reaches it."""

    marcas: List[Tuple[int, str, str]]  # (original line, construct, where)
    cargas: List[Tuple[str, bool, int]]  # (global name, at call time?, line)
    cargas_modulo: Set[Tuple[str, str]]  # (student module, attribute)
    modulos_enteros: Set[str]  # student modules used whole
    incompleto: Optional[str] = None


# --------------------------------------------------------------------------- analysing one unit


@dataclasses.dataclass
class _Ambito:
    tipo: str  # "funcion", "clase", "comprension"
    locales: Set[str]
    nombre: str
    alias: Dict[str, Set[str]] = dataclasses.field(default_factory=dict)
    yo: Optional[str] = None  # the method's self
    metodos: FrozenSet[str] = frozenset()  # methods of the class (in a class scope or a method)


class Visitante:
    """Iterative walk of one unit with Python's scoping: marks, and the global names it loads."""

    def __init__(self, cuaderno: Cuaderno, unidad: Unidad):
        self.c = cuaderno
        self.u = unidad
        self.ambitos: List[_Ambito] = []
        self.fijas: List[int] = []
        self.res = Analisis([], [], set(), set())
        self.llamadas: Set[int] = set()  # ids of nodes that are called
        self.ok_backward: Set[int] = set()
        self.ok_ruta: Set[int] = set()
        self.ok_nombre: Set[int] = set()
        self.raiz_juzgada: Set[int] = set()  # Names whose module path a whole chain already judged

    # -- driver

    def correr(self) -> Analisis:
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
        elif isinstance(n, COMPRENSIONES):
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
            hijos = [("v", x) for x in nodos_hijos(n)]
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
            locales, _ = ligados(n.body)
            metodos = frozenset(s.name for s in n.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
            return _Ambito("clase", locales, self._nombre_cualificado(n.name), metodos=metodos)
        # a function or a lambda
        params = parametros(n.args)
        cuerpo = n.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else [n.body]
        resumen = resumir(cuerpo)
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

    def _alias_locales(self, resumen: Resumen) -> Dict[str, Set[str]]:
        """Local names that hold modules: local imports and ``t = torch`` inside the function."""
        alias: Dict[str, Set[str]] = collections.defaultdict(set)
        escritos = self.c._modulos_escritos()
        for nombre, ruta in resumen.importaciones:
            alias[nombre].update(rutas_de_import(ruta, escritos))
        for s in resumen.asignaciones:
            raiz, attrs, _ = cadena(s.value)
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
        if not isinstance(n.ctx, ast.Load) and not (es_dunder(n.id) and n.id in ("__builtins__", "__class__")):
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
        if es_dunder(n.id) and n.id not in NOMBRES_DUNDER_OK and n.id not in DINAMICOS:
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
        raiz, attrs, nodos = cadena(n)
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
        if es_dunder(attr):
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
        ip = llamada_ipython(n)
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
        raiz, _, _ = cadena(receptor)
        if isinstance(raiz, ast.Name) and self._rutas_de(raiz.id):
            return  # a module's backward: judged as a dotted path
        posicionales = n.args
        honesta = (len(posicionales) + len(n.keywords) >= 2
                   and not any(isinstance(a, (ast.Starred, ast.Constant)) for a in posicionales)
                   and not any(k.arg is None or k.arg in BACKWARD_KW for k in n.keywords))
        if not honesta:
            self._marcar(n, "Tensor.backward()")
        self.ok_backward.add(id(f))

    def _regla_getattr(self, cual: str, n: ast.Call) -> None:
        if len(n.args) < 2 or any(isinstance(a, ast.Starred) for a in n.args[:2]) or any(k.arg is None for k in n.keywords):
            if not (len(n.args) >= 2 and self._es_yo(n.args[0])):
                self._marcar(n, "{} con argumentos calculados".format(cual))
            return
        objeto, nombre = n.args[0], n.args[1]
        texto = cte(nombre)
        if texto is not None:
            raiz, attrs, nodos = cadena(objeto)
            self._juzgar_cadena(raiz, attrs + [texto], nodos + [None], n)
            return
        if self._es_yo(objeto):
            return  # the student's own object: getattr(self, f"W{k}")
        raiz, _, _ = cadena(objeto)
        if isinstance(raiz, ast.Name) and self._rutas_de(raiz.id):
            self._marcar(n, "{} con un nombre calculado sobre un módulo".format(cual))
        else:
            self._marcar(n, "{} con un nombre calculado".format(cual))

    def _regla_operator(self, f: ast.Attribute, n: ast.Call) -> None:
        raiz, attrs, _ = cadena(f)
        if not (isinstance(raiz, ast.Name) and any(p.startswith("operator") for p in self._rutas_de(raiz.id))):
            return
        nombres = [cte(a) for a in n.args[:1 if f.attr == "methodcaller" else None]]
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
        args = [cte(a) for a in n.args]
        visitar: List[ast.AST] = []
        if metodo == "run_line_magic" and len(args) == 2 and args[0] is not None:
            magia, arg = args
            if magia in MAGIAS_CON_CODIGO and arg is not None:
                try:
                    sub, _ = parsear(arg)
                    visitar = sub.body
                except Ilegible:
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

