"""The review's records: what one test grades (:class:`Parte`), a code cell, a mark, the review of a
notebook, and student text made safe for one message line (:func:`seguro`, :func:`texto_marca`)."""
from __future__ import annotations

import dataclasses
import unicodedata
from typing import Dict, FrozenSet, List, Optional, Tuple

__all__ = ["Celda", "LIMITE", "Marca", "Parte", "Revision", "seguro", "texto_marca"]

LIMITE = 120  # characters of student text per message fragment


# --------------------------------------------------------------------------- what each test grades


@dataclasses.dataclass(frozen=True)
class Parte:
    """What one hidden test grades, as the course's probes call it (a course's parts table maps test
    names to these).

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

    ``marcas``: test name -> its marks (every test of the parts table, possibly empty);
    ``revisar_notebook``: Spanish reasons why reachability cannot be told (they mark no part);
    ``notas``: what the analysis skipped (cells it could not read) and other remarks.
    """

    marcas: Dict[str, List[Marca]]
    revisar_notebook: List[str]
    notas: List[str]

    def partes_marcadas(self) -> List[str]:
        """The tests with at least one mark, in the parts table's order."""
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

