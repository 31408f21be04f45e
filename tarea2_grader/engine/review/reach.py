"""What each test's roots reach, and the review's entry points: :func:`revisar` (cells) and
:func:`revisar_nb` (a notebook), given the course's parts table (test name -> :class:`Parte`)."""
from __future__ import annotations

import collections
import json
import re
from typing import Dict, List, Optional, Sequence, Set, Tuple

from tarea2_grader.engine.review.allowlist import BUILTINS, IPYTHON_BUILTINS
from tarea2_grader.engine.review.records import LIMITE, Celda, Marca, Parte, Revision, seguro, texto_marca
from tarea2_grader.engine.review.source import asigna_en
from tarea2_grader.engine.review.units import PRINCIPAL, Cuaderno

__all__ = ["celdas_de_notebook", "main", "revisar", "revisar_nb"]


# --------------------------------------------------------------------------- reviewing the parts


def _celda_del_test(celdas: Sequence[Celda], prueba: str) -> Optional[int]:
    """Index (in ``celdas``) of the test's cell: its grade_id, or a cell that declares it."""
    patron = re.compile(r"""\bevaluar\(\s*["']{}["']\s*\)""".format(re.escape(prueba)))
    for i, c in enumerate(celdas):
        if c.grade_id == prueba or (isinstance(c.fuente, str) and patron.search(c.fuente)):
            return i
    return None


def _celda_reejecutada(cuaderno: Cuaderno, prueba: str, variable: str) -> Optional[Celda]:
    """The cell the test re-runs: the last one before the test's cell that assigns ``variable``."""
    celdas = cuaderno.celdas
    fin = _celda_del_test(celdas, prueba)
    previas = celdas[:fin] if fin is not None else celdas
    for c in reversed(previas):
        if c.grade_id == prueba:
            continue
        try:
            if asigna_en(cuaderno.arboles.get(c.numero), c.fuente, variable):
                return c
        except RecursionError:
            continue
    return None


def _revisar_parte(cuaderno: Cuaderno, prueba: str, parte: Parte, revisar_nb: List[str]) -> List[Marca]:
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


def revisar(celdas: Sequence[Celda], partes: Dict[str, Parte]) -> Revision:
    """Review a submitted notebook's code cells (in notebook order) against every part of ``partes``
    (the course's table: test name -> what it grades)."""
    cuaderno = Cuaderno([c for c in celdas if isinstance(c, Celda)])
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


def revisar_nb(nb, partes: Dict[str, Parte]) -> Revision:
    """:func:`revisar` on a notebook (an nbformat node or the JSON dict)."""
    return revisar(celdas_de_notebook(nb), partes)


def main(rutas: Sequence[str], partes: Dict[str, Parte]) -> int:
    """Review the notebooks at ``rutas`` against ``partes`` and print every mark, one per line (a
    course's command line, e.g. ``python -m tarea2_grader.tarea2.review_roots cuaderno.ipynb ...``)."""
    for ruta in rutas:
        with open(ruta, encoding="utf-8") as fh:
            rev = revisar_nb(json.load(fh), partes)
        print(ruta)
        for m in rev.todas():
            print("  {}: {}".format(m.prueba, texto_marca(m, con_detalle=True)))
        for r in rev.revisar_notebook:
            print("  revisar: " + r)
    return 0
