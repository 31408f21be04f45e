"""The notebook as units of top-level code (:class:`Cuaderno`): every binding of every name in every
cell and ``%%writefile`` module, import paths and aliases, mutations, dynamic definitions; the
analysis of each unit (:mod:`tarea2_grader.engine.review.visitor`) on demand."""
from __future__ import annotations

import ast
import collections
import dataclasses
import re
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

from tarea2_grader.engine.review.allowlist import (BUILTINS, IPYTHON_BUILTINS, MAGIAS_CON_CODIGO, MAGIAS_SIN_PYTHON,
                                                   rutas_de_import)
from tarea2_grader.engine.review.records import Celda, seguro
from tarea2_grader.engine.review.source import (Ilegible, cadena, cte, llamada_ipython, magia_de_celda,
                                                modulo_writefile, parsear, resumir)
from tarea2_grader.engine.review.visitor import Analisis, Visitante

__all__ = ["PRINCIPAL", "Cuaderno", "Unidad"]

PRINCIPAL = "__main__"  # the notebook's own namespace


# --------------------------------------------------------------------------- units of top-level code


@dataclasses.dataclass
class Unidad:
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


class Cuaderno:
    """Every binding of every cell of one notebook, and the analysis of each unit on demand."""

    def __init__(self, celdas: Sequence[Celda]):
        self.celdas = list(celdas)
        self.unidades: List[Unidad] = []
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
        self._analisis: Dict[int, Analisis] = {}
        for celda in self.celdas:
            self._leer_celda(celda)
        for ns, raiz, uid, siempre in self.mutaciones:
            if siempre or not self.rutas_import.get((ns, raiz)):
                self._ligar(ns, raiz, uid)
        self._registrar_alias()

    # -- building units

    def _nueva(self, ns, celda, nodos, mapa, nombre, **kw) -> Unidad:
        u = Unidad(len(self.unidades), ns, celda, nodos, mapa, nombre, **kw)
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
            arbol, mapa = parsear(celda.fuente)
        except Ilegible as exc:
            self.arboles[celda.numero] = None
            self.notas.append("celda {}: no se pudo leer ({}); se omite (no define nada)".format(
                celda.numero, seguro(exc, 40)))
            return
        self.arboles[celda.numero] = arbol
        self._fuente_actual = celda.fuente
        self._codigo(arbol, mapa, celda, PRINCIPAL, 0)

    def _codigo(self, arbol: ast.Module, mapa: List[int], celda: Celda, ns: str, profundidad: int) -> None:
        """Units of a parsed cell (or cell magic body), unwrapping cell magics."""
        magia = magia_de_celda(arbol)
        if magia is None:
            self._unidades(arbol.body, mapa, celda, ns, True)
            return
        nombre, linea, cuerpo = magia
        inicio = mapa[0] if mapa else 1
        if nombre == "writefile":
            modulo = modulo_writefile(linea)
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
            arbol, mapa = parsear(cuerpo)
        except Ilegible as exc:
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
        rutas = rutas_de_import(ruta, self._modulos_escritos())
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
                    nombre = modulo_writefile(m.group(1).splitlines()[0] if m.group(1) else "")
                    if nombre:
                        self._escritos.add(nombre)
        return self._escritos

    def _cabecera(self, ns, celda, mapa, st, nodos, que, directa=False, extra=()) -> None:
        self._registrar(ns, celda, mapa, nodos, "cabecera de {}".format(que), directa, set(extra))

    def _registrar(self, ns, celda, mapa, nodos, nombre, directa, extra=frozenset()) -> None:
        """A unit of plain statements or expressions: what it binds, mutates, defines dynamically."""
        r = resumir(nodos)
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
                    sub, _ = parsear(arg)
                except Ilegible:
                    return
                linea = mapa[min(max(st.lineno - 1, 0), len(mapa) - 1)] if mapa else 1
                self._unidades(sub.body, [linea], celda, ns, directa)  # a one-line map: every line there
                return
            if nombre == "run" and arg:
                modulo = modulo_writefile(arg)
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
        ip = llamada_ipython(valor) if valor is not None else None
        if not ip or ip[0] != "run_line_magic" or len(ip[1].args) != 2:
            return None
        return cte(ip[1].args[0]) or "", cte(ip[1].args[1])

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

    def analisis(self, uid: int) -> Analisis:
        if uid not in self._analisis:
            self._analisis[uid] = Visitante(self, self.unidades[uid]).correr()
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
            raiz, attrs, _ = cadena(valor)
            if not isinstance(raiz, ast.Name):
                continue
            for t in objetivos:
                if isinstance(t, ast.Name):
                    self.alias[(u.ns, t.id)].append((raiz.id, tuple(attrs)))
                    self.unidades_alias.add((u.ns, t.id, u.id))

