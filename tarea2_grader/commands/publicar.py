"""``python -m tarea2_grader publicar`` (``make publicar``): the folder students get.

The course repository stays private: it holds the solutions, the hidden tests and the grader.
This module exports what students need (``release/<assignment>/`` and a short Spanish README with
the Colab link) into a destination folder that can be pushed to a public repository or uploaded
to the LMS, and refuses, leaving nothing behind, when an exported file holds:

* text that only exists inside the source notebook's solution or hidden-test regions (solution
  code, model answers, rubrics), compared line by line, so a renamed copy is caught too;
* distinctive lines of the grader package (``tarea2_grader/*.py``: references, hidden tests);
* nbgrader's solution / hidden-test markers, grader imports, ``<!-- pauta -->`` rubric comments;
* a file whose type students do not need (or whose content does not match its type).

A line counts as a fingerprint only when it does not also appear in the public part of the source
notebook (everything that nbgrader keeps in the release), so the honest release never matches.
A release that is stale with respect to ``source/`` is refused as well (it is never regenerated
here: ``make release`` does that, and its result is reviewed and committed before publishing).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import nbformat

from tarea2_grader.engine import cells
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course

GRADER_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DESTINATION = "publicado"
README = "README.md"
COLAB_URL = "https://colab.research.google.com/github/{repo}/blob/{rama}/{asignacion}/{notebook}.ipynb"
REPO_PATTERN = "<usuario>/<repositorio>"
BRANCH_PATTERN = "<rama>"
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_./-]*$")

MIN_CHARS = 12  # shorter lines ("else:", "return out") are too common to be a fingerprint
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")  # nbgrader's ClearSolutions delimiters
HIDDEN_MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")  # nbgrader's ClearHiddenTests delimiters
# Never copied: editor and Python leftovers that students do not need.
JUNK = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}
TEXT_SUFFIXES = {".ipynb", ".md", ".txt", ".csv"}
IMAGE_MAGIC = {".png": (b"\x89PNG\r\n\x1a\n",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
               ".gif": (b"GIF87a", b"GIF89a")}
# What a destination that is replaced may hold: a previous export, inside a clone of the public repo.
REPLACEABLE = {README, ".git"}
MARKERS = [
    (re.compile(r"BEGIN SOLUTION|END SOLUTION"), "marca de solución de nbgrader (BEGIN/END SOLUTION)"),
    (re.compile(r"BEGIN HIDDEN TESTS|END HIDDEN TESTS"), "marca de tests ocultos de nbgrader (BEGIN/END HIDDEN TESTS)"),
    (re.compile(r"\btarea2_grader\b"), "referencia al corrector (tarea2_grader)"),
    (re.compile(r"\bhidden\s*\.\s*evaluar\b"), "declaración de un test oculto (hidden.evaluar)"),
    (re.compile(r"<!--\s*/?\s*pauta"), "pauta de corrección (<!-- pauta -->)"),
    (re.compile(r"<!--\s*py\s*:"), "fórmula de una respuesta modelo (<!-- py: ... -->)"),
]


class PublishError(Exception):
    """Publishing refused; the message (Spanish) says why and what to do."""


@dataclass
class Finding:
    """Something in an exported file that must not reach students."""

    file: str   # as the instructor knows it, e.g. release/tarea2/tarea2.ipynb
    where: str  # the cell of a notebook, or "" for the whole file
    what: str   # Spanish description

    def __str__(self) -> str:
        return "{}{}: {}".format(self.file, ", " + self.where if self.where else "", self.what)


@dataclass
class Fingerprints:
    """Lines that give away a secret, each with a Spanish description of where it comes from."""

    lines: Dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- fingerprints

def normalize(line: str) -> str:
    """A line with its whitespace collapsed (indentation and spacing do not hide a copy)."""
    return " ".join(line.split())


def split_regions(source: str, begin: str, end: str, whole: bool = False) -> Tuple[List[str], List[str]]:
    """(lines inside begin/end regions, lines outside), as nbgrader delimits them.

    With ``whole`` a source without the begin marker counts as one region (nbgrader replaces an
    answer cell without markers entirely by the stub). Marker lines belong to neither side.
    """
    lines = source.split("\n")
    if whole and not any(begin in line for line in lines):
        return lines, []
    inside, outside, in_region = [], [], False
    for line in lines:
        if begin in line:
            in_region = True
        elif end in line:
            in_region = False
        else:
            (inside if in_region else outside).append(line)
    return inside, outside


def secret_kind(cell, hidden: bool = False) -> str:
    """Spanish name of what a source cell's secret region holds."""
    if hidden:
        return "test oculto"
    return "código de la solución" if cell.cell_type == "code" else "respuesta modelo o pauta"


def describe_secret(kind: str, grade_ids: List[str]) -> str:
    """Spanish description of a secret line: its kind and the source cells it comes from."""
    if len(grade_ids) == 1:
        return "{} de la celda `{}` de source/".format(kind, grade_ids[0])
    shown = ", ".join("`{}`".format(g) for g in grade_ids[:3])
    more = " y {} más".format(len(grade_ids) - 3) if len(grade_ids) > 3 else ""
    return "{} de las celdas {}{} de source/".format(kind, shown, more)


def source_secrets(source_nb: str, stubs: Iterable[str]) -> Tuple[Dict[str, str], Set[str]]:
    """({secret line: description}, public lines) of the source notebook.

    Secret: inside solution regions of answer cells and inside hidden-test regions. Public:
    everything else, plus the stubs nbgrader writes in their place.
    """
    origins: Dict[str, Tuple[str, List[str]]] = {}
    public: Set[str] = {normalize(line) for stub in stubs for line in stub.split("\n")}

    def add(lines, cell, hidden=False):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "?")
        for line in lines:
            kind, gids = origins.setdefault(normalize(line), (secret_kind(cell, hidden), []))
            if gid not in gids:
                gids.append(gid)

    for cell in nbformat.read(source_nb, as_version=4).cells:
        rest = cell.source
        if cell.metadata.get("nbgrader", {}).get("solution"):
            solution_in, outside = split_regions(cell.source, *SOLUTION_MARKERS, whole=True)
            add(solution_in, cell)
            rest = "\n".join(outside)
        hidden_in, outside = split_regions(rest, *HIDDEN_MARKERS)
        add(hidden_in, cell, hidden=True)
        public.update(normalize(line) for line in outside)
    return {line: describe_secret(kind, gids) for line, (kind, gids) in origins.items()}, public


def grader_lines(grader_dir: Path = GRADER_DIR) -> Dict[str, str]:
    """{line: description} of every line of the grader package's modules."""
    out: Dict[str, str] = {}
    for path in sorted(grader_dir.rglob("*.py")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            out.setdefault(normalize(line), "código del corrector ({}/{})".format(grader_dir.name, path.relative_to(grader_dir).as_posix()))
    return out


def fingerprints(course: Course, public_texts: Iterable[str] = ()) -> Fingerprints:
    """The distinctive secret lines of this course: source secrets first, then grader code.

    ``public_texts`` are texts meant for students besides the release (the generated README,
    whose template lives in this very module).
    """
    cfg = nbgrader_run.load_config(course)
    stubs = [cells._code_stub(cfg), cells._config_value(cfg, "ClearSolutions", "text_stub", "")]
    secret, public = source_secrets(course.source_nb, [*stubs, *public_texts])
    found = Fingerprints()
    for table in (secret, grader_lines()):
        for line, what in table.items():
            if len(line) >= MIN_CHARS and line not in public:
                found.lines.setdefault(line, what)
    return found


# ---------------------------------------------------------------- scanning

def strings_in(value) -> List[str]:
    """Every string inside a JSON value; a list of strings (an ipynb multiline) is joined."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return ["".join(value)]
        return [s for v in value for s in strings_in(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    return []


def notebook_parts(text: str) -> List[Tuple[str, str]]:
    """[(where, text)] of a notebook file: one entry per cell, then the rest (metadata)."""
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("not a notebook")
    parts = []
    for i, cell in enumerate(doc.get("cells") or []):
        gid = (cell.get("metadata", {}).get("nbgrader", {}) or {}).get("grade_id") if isinstance(cell, dict) else None
        parts.append(("celda {}{}".format(i + 1, " ({})".format(gid) if gid else ""), "\n".join(strings_in(cell))))
    rest = {k: v for k, v in doc.items() if k != "cells"}
    parts.append(("metadatos del notebook", "\n".join(strings_in(rest))))
    return parts


def scan_text(text: str, prints: Fingerprints) -> List[str]:
    """Spanish descriptions of what a piece of text gives away (empty when nothing)."""
    found = [what for pattern, what in MARKERS if pattern.search(text)]
    hits: Dict[str, List[str]] = {}
    for line in text.split("\n"):
        key = normalize(line)
        if key in prints.lines:
            hits.setdefault(prints.lines[key], []).append(key)
    for what, lines in hits.items():
        example = lines[0] if len(lines[0]) <= 80 else lines[0][:77] + "..."
        found.append("{} ({} línea{}, p. ej. «{}»)".format(what, len(lines), "" if len(lines) == 1 else "s",
                                                             example))
    return found


def file_parts(path: Path) -> List[Tuple[str, str]]:
    """[(where, text)] to scan in one exported file; ValueError (Spanish) when its type is not expected."""
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix in IMAGE_MAGIC:
        if not data.startswith(IMAGE_MAGIC[suffix]):
            raise ValueError("dice ser una imagen {} pero su contenido no lo es".format(suffix))
        return []
    if suffix not in TEXT_SUFFIXES:
        raise ValueError("tipo de archivo no esperado ({}): los estudiantes solo necesitan el notebook (y, si "
                         "acaso, imágenes o datos .png/.jpg/.gif/.csv/.txt/.md)".format(suffix or "sin extensión"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("no es texto UTF-8 como corresponde a un archivo {}".format(suffix)) from None
    if suffix != ".ipynb":
        return [("", text)]
    try:
        return notebook_parts(text)
    except ValueError:
        raise ValueError("no es un notebook válido (JSON)") from None


def scan_folder(folder: Path, prints: Fingerprints, shown_as=lambda rel: rel) -> List[Finding]:
    """Findings in every file under folder; ``shown_as`` maps a relative path to the name shown."""
    findings: List[Finding] = []
    for path in sorted(p for p in folder.rglob("*") if not p.is_dir()):
        name = shown_as(path.relative_to(folder).as_posix())
        try:
            parts = file_parts(path)
        except ValueError as e:
            findings.append(Finding(name, "", str(e)))
            continue
        for where, text in parts:
            findings.extend(Finding(name, where, what) for what in scan_text(text, prints))
    return findings


# ---------------------------------------------------------------- release freshness

def comparable(path: str):
    """What two generations of a release must share: notebook format and metadata, and per cell
    its id, type, source and metadata."""
    nb = nbformat.read(path, as_version=4)
    cell_keys = [(c.get("id"), c.cell_type, c.source, c.metadata) for c in nb.cells]
    return nb.nbformat, nb.nbformat_minor, nb.metadata, cell_keys


def stale_cells(committed: str, fresh: str) -> Optional[List[str]]:
    """None when the two releases match; otherwise the ids of the cells that differ."""
    a, b = comparable(committed), comparable(fresh)
    if a == b:
        return None
    return [c[0] for c in b[3] if c not in a[3]] + [c[0] for c in a[3] if c not in b[3]]


def fresh_release(course: Course, scratch: str) -> str:
    """The release nbgrader makes now from source/, generated in scratch (course and gradebook untouched)."""
    run = nbgrader_run.run_nbgrader(course, [
        "generate_assignment", course.assignment_arg, "--force",
        "--CourseDirectory.release_directory=" + os.path.join(scratch, "release"),
        "--CourseDirectory.db_url=sqlite:///" + os.path.join(scratch, "gradebook.db")])
    if run.returncode != 0:
        raise PublishError("nbgrader generate_assignment no pudo convertir source/; no se publicó nada:\n"
                           + run.output[-3000:])
    return os.path.join(scratch, "release", course.assignment, course.notebook + ".ipynb")


def check_fresh(course: Course, release_nb: str) -> None:
    """Refuse a release that is not what nbgrader makes from source/ now."""
    with tempfile.TemporaryDirectory(prefix="publicar-") as scratch:
        stale = stale_cells(release_nb, fresh_release(course, scratch))
    if stale is not None:
        raise PublishError(
            "{} está desactualizado respecto de source/ (celdas distintas: {}). publicar no lo regenera: "
            "ejecute `make release`, revise el cambio, haga commit y vuelva a ejecutar `make publicar`. "
            "No se publicó nada.".format(os.path.relpath(release_nb, course.root),
                                         ", ".join(str(c) for c in stale) or "metadatos"))


# ---------------------------------------------------------------- the export

def colab_link(repo: Optional[str], rama: Optional[str], course: Course) -> str:
    """The Colab URL of the published notebook (with placeholders where repo or branch are unknown)."""
    return COLAB_URL.format(repo=repo or REPO_PATTERN, rama=rama or BRANCH_PATTERN,
                            asignacion=course.assignment, notebook=course.notebook)


def student_readme(course: Course, repo: Optional[str], rama: str) -> str:
    """The Spanish README students see in the published folder."""
    nb = "{}/{}.ipynb".format(course.assignment, course.notebook)
    link = colab_link(repo, rama, course)
    if repo:
        open_text = "Abre el notebook `{}` en Google Colab: [abrir en Colab]({})".format(nb, link)
    else:
        open_text = ("Abre el notebook `{}` en Google Colab con este enlace, reemplazando `{}` por el usuario y "
                     "el nombre de este repositorio (los de su dirección en GitHub):\n\n   ```\n   {}\n   ```"
                     .format(nb, REPO_PATTERN, link))
    return """# Tarea 2: Back to training

Backpropagation a mano en PyTorch: derivadas de las activaciones, entropía cruzada, gradientes de cada capa,
`backward`, SGD y un ciclo de entrenamiento.

## Cómo trabajar

1. {open_text}

   También puedes descargarlo y abrirlo en JupyterLab.
2. En Colab, guarda una copia en tu Drive (*Archivo → Guardar una copia en Drive*) antes de escribir.
3. Responde en las celdas `# TU CÓDIGO AQUÍ` y `TU RESPUESTA AQUÍ`, y ejecuta los chequeos que vienen después de
   cada respuesta: imprimen `ok` o `REVISAR` por tensor.
4. Al terminar, haz *Reiniciar y ejecutar todo*, descarga el `.ipynb` y súbelo a la plataforma del curso.

Solo necesitas el notebook: corre con torch, torchvision y matplotlib (ya instalados en Colab). La corrección
usa tests con entradas que no ves; los chequeos del notebook te dicen si vas bien.

El enunciado original (introducción, Parte 1a, introducción de la Parte 2 y Parte 2a) es de Jorge Pérez,
[CC BY 4.0](http://creativecommons.org/licenses/by/4.0/).
""".format(open_text=open_text, nb=nb)


def release_files(release_dir: Path) -> List[Path]:
    """Files of the release folder to export (editor and Python leftovers skipped), relative paths."""
    out = []
    for path in sorted(release_dir.rglob("*")):
        rel = path.relative_to(release_dir)
        if any(part in JUNK for part in rel.parts) or path.is_dir():
            continue
        out.append(rel)
    return out


def stage(course: Course, staging: Path, repo: Optional[str], rama: str) -> None:
    """Write the export into staging: <assignment>/ (copy of the release folder) and README.md."""
    release_dir = Path(course.path("release", course.assignment))
    for rel in release_files(release_dir):
        target = staging / course.assignment / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(release_dir / rel, target)
    (staging / README).write_text(student_readme(course, repo, rama), encoding="utf-8")


REPORT_DIR = "informe"  # the course report (informe.py): for the teaching team only
REPORT_MARKER = b'<meta name="tarea2-informe"'


def check_no_report(course: Course, release_dir: Path) -> None:
    """Refuse to publish the course report: an ``informe`` folder, or a page carrying its marker."""
    for rel in release_files(release_dir):
        path = release_dir / rel
        if REPORT_DIR in rel.parts or (path.suffix.lower() in (".html", ".htm")
                                        and REPORT_MARKER in path.read_bytes()):
            raise PublishError("release/{}/{} es (o contiene) el informe del curso, que es solo para el equipo "
                               "docente; no se publicó nada. Sáquelo de release/.".format(course.assignment, rel))


def check_destination(course: Course, destino: Path) -> None:
    """Refuse a destination whose content publicar would destroy, or one inside source/ or release/."""
    for private in ("source", "release", REPORT_DIR):
        inner = Path(course.path(private)).resolve()
        if destino == inner or inner in destino.parents:
            raise PublishError("el destino {} está dentro de {}/: elija otra carpeta.".format(destino, private))
    if destino.exists():
        if not destino.is_dir():
            raise PublishError("el destino {} existe y no es una carpeta.".format(destino))
        extra = sorted(p.name for p in destino.iterdir() if p.name not in REPLACEABLE | {course.assignment})
        if extra:
            raise PublishError(
                "el destino {} tiene otros archivos ({}): publicar solo reemplaza una publicación anterior "
                "(README.md y {}/, y conserva .git). Elija una carpeta nueva o vacía.".format(
                    destino, ", ".join(extra), course.assignment))


def install(staging: Path, destino: Path) -> None:
    """Move the checked export into destino, replacing a previous export and keeping its .git."""
    if not destino.exists():
        os.replace(staging, destino)
        return
    for entry in destino.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in staging.iterdir():
        os.replace(entry, destino / entry.name)
    staging.rmdir()


def publish(course: Course, destino: Optional[str] = None, repo: Optional[str] = None,
             rama: str = "main") -> Path:
    """Export the student folder into destino (default <course>/publicado); PublishError if refused.

    Order: destination and release checks, copy into a hidden staging folder next to destino,
    scan every staged file, check the release is fresh, then move the export into place. On
    refusal the staging folder is removed and destino is left as it was.
    """
    if repo is not None and not REPO_RE.match(repo):
        raise PublishError("--repo debe tener la forma usuario/repositorio (se recibió {!r}).".format(repo))
    if not BRANCH_RE.match(rama):
        raise PublishError("--rama no es un nombre de rama válido (se recibió {!r}).".format(rama))
    destino_path = Path(destino or course.path(DEFAULT_DESTINATION)).resolve()
    check_destination(course, destino_path)
    release_nb = course.path("release", course.assignment, course.notebook + ".ipynb")
    if not os.path.exists(course.source_nb):
        raise PublishError("no existe {}: publicar lo necesita para saber qué es secreto.".format(
            os.path.relpath(course.source_nb, course.root)))
    if not os.path.exists(release_nb):
        raise PublishError("no existe {}: genérelo con `make release`.".format(
            os.path.relpath(release_nb, course.root)))
    check_no_report(course, Path(course.path("release", course.assignment)))
    destino_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="." + destino_path.name + "-", dir=destino_path.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the export's mode
    try:
        stage(course, staging, repo, rama)
        prefix = course.assignment + "/"
        shown = lambda rel: ("release/" + rel) if rel.startswith(prefix) else rel + " (generado)"  # noqa: E731
        prints = fingerprints(course, [(staging / README).read_text(encoding="utf-8")])
        findings = scan_folder(staging, prints, shown)
        if findings:
            raise PublishError(
                "lo que se iba a publicar contiene material que no debe llegar a los estudiantes; no se publicó "
                "nada:\n" + "\n".join("  - " + str(f) for f in findings) +
                "\nCorrija release/{}/ (lo normal es regenerarlo con `make release`) y vuelva a ejecutar "
                "`make publicar`.".format(course.assignment))
        check_fresh(course, release_nb)
        install(staging, destino_path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return destino_path
