"""What one hidden test cell earned: the trusted verdict, and what grading one notebook produced.

Plain data, computed on the trusted side (:mod:`tarea2_grader.engine.runner`) and carried as JSON
from a grading worker to the coordinator (:meth:`Resultado.como_datos`).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional


@dataclasses.dataclass
class Veredicto:
    """The trusted verdict of one hidden test cell."""

    prueba: Optional[str]
    ok: bool
    mensaje: str
    marcada: bool = False  # the static review flagged the graded code: a person must review it


@dataclasses.dataclass
class Resultado:
    """What grading one notebook produced."""

    semilla: int
    outputs: Dict[int, List[dict]]
    veredictos: Dict[int, Veredicto]
    notas: List[str]
    aislado: bool
    segundos: float = 0.0
    sandbox_s: float = 0.0  # sandbox time charged to the student's budget
    falla: str = ""  # non-empty: the grading machinery failed (no sandbox), so these verdicts grade nothing

    def puntos(self, nb) -> Dict[str, float]:
        """grade_id -> points of every autograded test cell (full points or 0)."""
        out = {}
        for i, v in self.veredictos.items():
            meta = nb.cells[i].metadata.get("nbgrader", {})
            out[meta.get("grade_id")] = float(meta.get("points", 0)) if v.ok else 0.0
        return out

    def mensajes(self, nb) -> Dict[str, str]:
        """grade_id -> the verdict's message."""
        return {nb.cells[i].metadata.get("nbgrader", {}).get("grade_id"): v.mensaje for i, v in self.veredictos.items()}

    def marcadas(self, nb) -> List[str]:
        """grade_ids of the test cells the static review flagged, in notebook order."""
        return [nb.cells[i].metadata.get("nbgrader", {}).get("grade_id")
                for i, v in sorted(self.veredictos.items()) if v.marcada]

    def como_datos(self) -> dict:
        """Plain JSON data (what a grading worker sends back to the coordinator)."""
        return {"semilla": self.semilla, "aislado": self.aislado, "segundos": self.segundos, "sandbox_s": self.sandbox_s,
                "notas": list(self.notas), "falla": self.falla,
                "outputs": [[i, outs] for i, outs in sorted(self.outputs.items())],
                "veredictos": [[i, v.prueba, v.ok, v.mensaje, v.marcada] for i, v in sorted(self.veredictos.items())]}

    @classmethod
    def desde_datos(cls, data: dict) -> "Resultado":
        """The inverse of :meth:`como_datos`."""
        return cls(int(data["semilla"]), {int(i): outs for i, outs in data["outputs"]},
                   {int(v[0]): Veredicto(v[1], bool(v[2]), v[3], bool(v[4:5] and v[4])) for v in data["veredictos"]},
                   list(data["notas"]), bool(data["aislado"]), float(data["segundos"]),
                   float(data.get("sandbox_s", 0.0)), str(data.get("falla") or ""))



REVISION_SIN_MARCA = "sin la marca: correcto, {:g} puntos; una persona revisará esta parte y puede devolvérselos."


def con_revision(v: Veredicto, revision, puntos) -> Veredicto:
    """The verdict of a test whose graded code the static review flagged: 0 points, every mark named
    (cell, line, construct) and what the values alone earned."""
    if revision is None or not revision.marcas.get(v.prueba):
        return v
    from tarea2_grader.engine.review import records
    marcas = revision.marcas[v.prueba]
    lineas = [records.texto_marca(m) for m in marcas[:5]] + (["(y {} más)".format(len(marcas) - 5)] if len(marcas) > 5 else [])
    if v.ok:
        cola = REVISION_SIN_MARCA.format(float(puntos or 0))
    else:
        cola = "sin la marca: " + v.mensaje
    return Veredicto(v.prueba, False, "\n".join(lineas) + "\n" + cola, marcada=True)
