"""Size limits: submitted files, what an archive may expand to, and every student output and
attachment kept in the autograded notebook or shown in the feedback (tarea2_grader/engine/tamano.py).

The pipeline tests grade a copy of the real course through ``pipeline.grade`` (what ``make grade``
runs) from one LMS zip: an honest classmate (the reference solution) beside a student with huge
image outputs, one with a huge markdown attachment, one whose nested zip is a bomb and one whose
notebook is over the file limit.  The course's file limit is set to 5 MB so that the test files
stay small; the output and notebook limits are the defaults (2 MB, 20 MB).
"""
import csv
import io
import json
import logging
import os
import shutil
import struct
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from nbgrader.api import Gradebook

from tarea2_grader.integration import collect
from tools import examples
from tarea2_grader.commands import pipeline
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.integration.course import Course
from tarea2_grader.engine import tamano
from tarea2_grader.sandboxed import protocol

from tests.support import course_facts
from tests.support.repo import REPO

SOURCE = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
MB = 1000 * 1000
FILE_MB = 5
EXTRA_CONFIG = "\nc.SizeLimits.file_mb = {}\nc.SizeLimits.archive_mb = 60\n".format(FILE_MB)
FULL_MARKS = course_facts.autograded_points()
IMAGE = 3 * MB  # over the 2 MB per output


# ---------------------------------------------------------------- unit: one output, exact bytes


def image_output(n):
    """A display_data output whose content is 'display_data' (12 bytes) and n bytes of image."""
    return {"output_type": "display_data", "data": {"image/png": "A" * n}, "metadata": {}}


@pytest.mark.parametrize("delta,kept", [(-1, True), (0, True), (1, False)])
def test_an_output_is_kept_up_to_exactly_the_limit(delta, kept):
    limit = 1000
    out = image_output(limit - 12 + delta)
    capped = tamano.cap_output(out, tamano.Caps(output=limit, notebook=10 * limit))
    assert (capped is out) == kept
    if not kept:
        assert capped["output_type"] == "stream"
        assert "omitida: supera el límite de 1 kB por salida" in capped["text"]
        assert "salida de 1 kB" in capped["text"]


def test_a_huge_image_note_says_its_size_and_the_limit():
    capped = tamano.cap_output(image_output(150 * MB - 12), tamano.Caps())
    assert capped["text"] == "(salida de 150 MB omitida: supera el límite de 2 MB por salida)\n"


def test_non_ascii_text_is_measured_in_utf8_bytes():
    # 'stream' + 'stdout' = 12 bytes, then 500 'ñ' = 1000 bytes in UTF-8
    out = {"output_type": "stream", "name": "stdout", "text": "ñ" * 500}
    assert tamano.cap_output(out, tamano.Caps(output=1012)) is out
    assert tamano.cap_output(out, tamano.Caps(output=1011)) is not out


def test_a_long_stream_keeps_its_beginning_within_the_limit():
    text = "".join("línea {}\n".format(i) for i in range(400000))
    out = {"output_type": "stream", "name": "stdout", "text": text}
    caps = tamano.Caps(output=2 * MB)
    capped = tamano.cap_output(out, caps)
    assert protocol.content_size(capped) <= caps.output
    assert capped["text"].startswith("línea 0\nlínea 1\n")
    assert capped["text"].rstrip().endswith("se muestra el comienzo: supera el límite de 2 MB por salida)")


def test_the_notebook_cap_keeps_the_first_outputs_that_fit_exactly():
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("a"), new_code_cell("b")])
    nb.cells[0].outputs = [new_output("display_data", data={"image/png": "A" * 988})]  # 1000 bytes
    nb.cells[1].outputs = [new_output("display_data", data={"image/png": "B" * 988})]
    rest = tamano.notebook_rest_size(nb)
    exact = nbformat.from_dict(nb)
    report = tamano.cap_notebook(exact, tamano.Caps(output=1000, notebook=rest + 2000))
    assert report.outputs == 0 and exact.cells[1].outputs[0]["data"]["image/png"] == "B" * 988
    short = nbformat.from_dict(nb)
    report = tamano.cap_notebook(short, tamano.Caps(output=1000, notebook=rest + 1999))
    assert report.outputs == 1 and short.cells[0].outputs[0]["data"]["image/png"] == "A" * 988
    assert "el notebook ya llegó al límite" in short.cells[1].outputs[0]["text"]
    nbformat.validate(short)


@pytest.mark.parametrize("delta,kept", [(0, True), (1, False)])
def test_an_attachment_over_the_limit_is_dropped_with_a_note_in_its_cell(delta, kept):
    cell = new_markdown_cell("Mi gráfico: ![g](attachment:g.png)")
    cell["attachments"] = {"g.png": {"image/png": "A" * (1000 + delta)}}
    nb = nbformat.v4.new_notebook(cells=[cell])
    report = tamano.cap_notebook(nb, tamano.Caps(output=1000, notebook=10 ** 6))
    assert ("g.png" in nb.cells[0].get("attachments", {})) == kept
    assert report.attachments == (0 if kept else 1)
    if not kept:
        assert "(adjunto 'g.png' de 1 kB omitido: supera el límite de 1 kB por adjunto)" in nb.cells[0].source


def test_a_json_file_is_read_without_its_long_strings(tmp_path):
    path = str(tmp_path / "nb.json")
    data = {"a": "x" * 100, "b": "y" * 101, "c": ['q"\\' * 40, 1, None], "\u00e9": "ü"}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
    old = tamano.CHUNK
    try:
        for chunk in (1, 3, 1 << 20):  # strings and escapes cut at every place by the chunks
            tamano.CHUNK = chunk
            assert tamano.load_shrunk(path, 10 ** 6) == data
            got = tamano.load_shrunk(path, 100)
            assert got["a"] == "x" * 100 and protocol.omitted_size(got["b"]) == 101
            assert protocol.omitted_size(got["c"][0]) == len(json.dumps(data["c"][0])) - 2
            assert got["\u00e9"] == "ü"
    finally:
        tamano.CHUNK = old


# ---------------------------------------------------------------- unit: archives


def extract(tmp_path, archive_files, **limits):
    """Run the safe extractor on {name: bytes} in an archive folder; (extracted folder, refusals)."""
    archive = tmp_path / "archive"
    extracted = tmp_path / "extracted"
    archive.mkdir()
    extracted.mkdir()
    for name, data in archive_files.items():
        (archive / name).write_bytes(data)
    plugin = collect.SafeExtractorPlugin()
    for key, value in limits.items():
        setattr(plugin.config.SizeLimits, key, value)
    plugin.log = logging.getLogger("test_tamano")
    plugin.extract(str(archive), str(extracted))
    return extracted, collect.read_refusals(str(extracted))


def zip_bytes(files, compression=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def lying_zip(name, data, declared):
    """A zip whose headers declare ``declared`` bytes for a member that inflates to len(data)."""
    raw = bytearray(zip_bytes({name: data}))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(sig)
        raw[at + offset:at + offset + 4] = struct.pack("<I", declared)
    return bytes(raw)


def test_each_file_student_and_nesting_level_is_capped(tmp_path):
    folder = "Ana_1_assignsubmission_file_/"
    files = {
        "clase.zip": zip_bytes({
            folder + "tarea2.ipynb": b"{}",
            "Beto_2_assignsubmission_file_/tarea2.ipynb": b"0" * (2 * MB),             # declared 2 MB > 1 MB
            "Caro_3_assignsubmission_file_/x.zip": zip_bytes({"y.zip": zip_bytes({"tarea2.ipynb": b"{}"})}),
            "Eli_5_assignsubmission_file_/video.mp4": b"0" * (3 * MB),                   # never extracted
            "Fede_6_assignsubmission_file_/b.zip": lying_zip("tarea2.ipynb", b"1" * (3 * MB), 100),
            "../../fuera.ipynb": b"{}",
        }),
    }
    extracted, refused = extract(tmp_path, files, file_mb=1)
    by_file = {r["archivo"]: r["motivo"] for r in refused}
    assert (extracted / "clase" / folder / "tarea2.ipynb").read_bytes() == b"{}"
    assert "supera el límite de 1 MB por archivo" in by_file["clase/Beto_2_assignsubmission_file_/tarea2.ipynb"]
    assert "dentro de otro" in by_file["clase/Caro_3_assignsubmission_file_/x/y.zip"]
    # the headers say 100 bytes, the data inflates to 3 MB: stopped at what it declares (checksum error)
    assert "clase/Fede_6_assignsubmission_file_/b/tarea2.ipynb" in by_file
    assert not (extracted / "clase" / "Fede_6_assignsubmission_file_" / "b" / "tarea2.ipynb").exists()
    assert not (extracted / "clase" / "Eli_5_assignsubmission_file_").exists()
    assert (extracted / "clase" / "fuera.ipynb").exists() and not (tmp_path / "fuera.ipynb").exists()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(extracted) for f in fs)
    assert total < 1 * MB


def test_an_archive_with_too_many_entries_is_not_opened(tmp_path):
    many = zip_bytes({"Ana_1_assignsubmission_file_/{}.ipynb".format(i): b"{}" for i in range(30)},
                     zipfile.ZIP_STORED)
    extracted, refused = extract(tmp_path, {"clase.zip": zip_bytes({"Ana_1_assignsubmission_file_/a.zip": many})},
                                 archive_entries=20)
    assert [r["archivo"] for r in refused] == ["clase/Ana_1_assignsubmission_file_/a.zip"]
    assert "más de 20 entradas" in refused[0]["motivo"]


def test_one_student_cannot_use_up_the_whole_download(tmp_path):
    big = {"Ana_1_assignsubmission_file_/{}.ipynb".format(i): b"0" * 600000 for i in range(5)}
    big["Zoe_9_assignsubmission_file_/tarea2.ipynb"] = b"{}"
    extracted, refused = extract(tmp_path, {"clase.zip": zip_bytes(big)}, file_mb=1, archive_mb=2)
    assert (extracted / "clase" / "Zoe_9_assignsubmission_file_" / "tarea2.ipynb").exists()
    assert all("Ana_1" in r["archivo"] for r in refused) and len(refused) == 4


# ---------------------------------------------------------------- through the pipeline


def reference():
    return nbformat.read(SOURCE, as_version=4)


def with_huge_images():
    """The reference with a 3 MB image shown while an answer cell runs and a 150 MB-like one
    (3 MB here too) submitted in a cell after the last test."""
    nb = reference()
    answer = next(c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") == "derivadas_codigo")
    answer.source += ("\nfrom IPython.display import display as _d\n"
                      "_d({'image/png': 'iVBOR' + 'A' * %d}, raw=True)\n" % IMAGE)
    extra = new_code_cell("mostrar_grafico()")
    extra.outputs = [new_output("display_data", data={"image/png": "B" * IMAGE})]
    nb.cells.append(extra)
    return nb


def with_huge_attachment():
    nb = reference()
    cell = new_markdown_cell("Mi gráfico: ![g](attachment:g.png)")
    cell["attachments"] = {"g.png": {"image/png": "C" * IMAGE}}
    nb.cells.append(cell)
    return nb


def oversized():
    nb = reference()
    nb.cells[-1].outputs = [new_output("stream", name="stdout", text="x" * (FILE_MB * MB + 1000))]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A copy of the course graded by pipeline.grade from one LMS zip."""
    root = str(tmp_path_factory.mktemp("tamano"))
    shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"))
    shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)
    with open(os.path.join(root, "nbgrader_config.py"), "a") as fh:
        fh.write(EXTRA_CONFIG)
    course = Course(root)
    bomb = zip_bytes({"tarea2.ipynb": b"0" * (50 * MB)})  # 50 KB that inflate to 50 MB
    files = {
        "Ana Honesta_9001_assignsubmission_file_/tarea2.ipynb": nbformat.writes(reference()),
        "Beto Imagen_9002_assignsubmission_file_/tarea2.ipynb": nbformat.writes(with_huge_images()),
        "Caro Adjunto_9003_assignsubmission_file_/tarea2.ipynb": nbformat.writes(with_huge_attachment()),
        "Dani Bomba_9004_assignsubmission_file_/entrega.zip": bomb,
        "Eli Grande_9005_assignsubmission_file_/tarea2.ipynb": nbformat.writes(oversized()),
    }
    os.makedirs(course.archive_dir)
    with open(os.path.join(course.archive_dir, "clase.zip"), "wb") as fh:
        fh.write(zip_bytes(files))
    rows = {r.student: r for r in pipeline.grade(course, quiet=True)}
    with open(course.path("grades.csv"), encoding="utf-8") as fh:
        csv_rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    return course, rows, csv_rows


def auto_points(course, student):
    with Gradebook("sqlite:///" + course.path("gradebook.db"), nbgrader_run.course_id(course)) as gb:
        sub = gb.find_submission_notebook("tarea2", "tarea2", student)
        return sum(g.auto_score or 0 for g in sub.grades)


@pytest.mark.slow
def test_the_honest_classmate_keeps_full_marks(graded):
    course, rows, csv_rows = graded
    assert auto_points(course, "9001") == FULL_MARKS
    assert float(csv_rows["9001"]["total"]) == FULL_MARKS


@pytest.mark.slow
@pytest.mark.parametrize("student", ["9002", "9003"])
def test_huge_outputs_and_attachments_cost_no_point_and_stay_under_the_caps(graded, student):
    course, rows, csv_rows = graded
    assert auto_points(course, student) == FULL_MARKS
    assert os.path.getsize(course.autograded_nb(student)) < 2 * MB  # 20 MB cap; the notebook is ~0.2 MB
    assert os.path.getsize(course.feedback_page(student)) < 2 * MB
    assert "por tamaño" in csv_rows[student]["observaciones"]


@pytest.mark.slow
def test_huge_images_become_notes_in_the_autograded_notebook_and_feedback(graded):
    course, _, _ = graded
    nb = nbformat.read(course.autograded_nb("9002"), as_version=4)
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    note = "(salida de 3,0 MB omitida: supera el límite de 2 MB por salida)"
    assert sum(note in t for t in texts) == 2  # one shown while running, one as submitted
    assert not any(len(json.dumps(o)) > 2 * MB for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    with open(course.feedback_page("9002"), encoding="utf-8") as fh:
        assert note in fh.read()


@pytest.mark.slow
def test_a_huge_attachment_becomes_a_note_in_its_cell(graded):
    course, _, _ = graded
    nb = nbformat.read(course.autograded_nb("9003"), as_version=4)
    cell = next(c for c in nb.cells if "Mi gráfico" in c.source)
    assert not cell.get("attachments")
    assert "(adjunto 'g.png' de 3 MB omitido: supera el límite de 2 MB por adjunto)" in cell.source


@pytest.mark.slow
def test_a_zip_bomb_is_refused_in_that_students_row(graded):
    course, rows, csv_rows = graded
    row = csv_rows["9004"]
    assert float(row["total"]) == 0
    assert "entrega rechazada" in row["observaciones"]
    assert "50 MB" in row["observaciones"] and "límite de 5 MB por archivo" in row["observaciones"]
    extracted = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(course.extracted_dir) for f in fs)
    assert extracted < 10 * MB


@pytest.mark.slow
def test_an_oversized_file_is_refused_in_that_students_row(graded):
    course, rows, csv_rows = graded
    row = csv_rows["9005"]
    assert float(row["total"]) == 0
    assert "entrega rechazada" in row["observaciones"] and "límite de 5 MB por archivo" in row["observaciones"]


def test_a_file_over_the_limit_put_in_submitted_directly_is_refused(tmp_path):
    path = str(tmp_path / "tarea2.ipynb")
    with open(path, "w") as fh:
        fh.write(nbformat.writes(oversized()))
    limits = tamano.SizeLimits()
    limits.file_mb = FILE_MB
    with pytest.raises(tamano.TooLarge, match="supera el límite de 5 MB por archivo"):
        tamano.cap_submission(path, limits)


def test_a_submitted_notebook_is_capped_in_place(tmp_path):
    path = str(tmp_path / "tarea2.ipynb")
    nbformat.write(with_huge_images(), path)
    notes = tamano.cap_submission(path, tamano.SizeLimits())
    assert os.path.getsize(path) < 1 * MB and notes
    nb = nbformat.read(path, as_version=4)
    assert "omitida: supera el límite de 2 MB por salida" in nb.cells[-1].outputs[0]["text"]
