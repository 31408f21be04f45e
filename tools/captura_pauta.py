"""Regenerate ``docs/pauta_formgrader.png``: formgrader showing a rubric beside a student's answer.

    .venv/bin/python -m tools.captura_pauta [salida.png]

Grades, in a temporary copy of the course, one student (the reference answers, with a typical
mistake in the written derivatives), starts a Jupyter server from that copy and photographs, with
the system Chromium (headless, via Playwright), the formgrader page of that submission: the
student's ``derivadas_md`` answer and the rubric cell right below it.  Takes about two minutes.
"""
import os
import shutil
import sys
import tempfile

from tools import examples
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.commands import servidor

OUT = os.path.join(servidor.REPO, "docs", "pauta_formgrader.png")
STUDENT = "1001"
GRADE_ID = "derivadas_md"
# A written answer with a mistake the rubric names (swish without the chain rule's beta).
ANSWER = r"""**relu:** $\text{relu}'(x) = 1$ si $x > 0$ y $0$ si $x \le 0$.

**swish:** con $s = \text{sigmoid}(\beta x)$, $\dfrac{\partial\,\text{swish}}{\partial x} = s + x\,s(1-s)$ y
$\dfrac{\partial\,\text{swish}}{\partial \beta} = x^2 s(1-s)$.

**celu:** $\dfrac{\partial\,\text{celu}}{\partial x} = 1$ si $x > 0$ y $e^{x/\alpha}$ si no;
$\dfrac{\partial\,\text{celu}}{\partial \alpha} = 0$ si $x > 0$ y $e^{x/\alpha} - 1 - \frac{x}{\alpha}e^{x/\alpha}$ si no.
"""
CLIP_JS = """(gid) => {
  const cell = document.getElementById(gid).closest('.cell');
  const rubric = cell.nextElementSibling;
  const a = cell.getBoundingClientRect(), b = rubric.getBoundingClientRect();
  return {x: Math.min(a.left, b.left) + window.scrollX - 10, y: a.top + window.scrollY - 10,
          width: Math.max(a.right, b.right) - Math.min(a.left, b.left) + 20,
          height: Math.min(b.bottom - a.top, 2600) + 20};
}"""


def chromium_executable() -> str:
    """The system Chromium (Debian package ``chromium``)."""
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("falta chromium: sudo apt-get install chromium")


def screenshot(url: str, out: str) -> None:
    """Photograph the answer cell and its rubric on formgrader's page at ``url``."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        page.goto(url, wait_until="load")
        page.wait_for_timeout(3000)  # MathJax, when it can be loaded
        page.screenshot(path=out, clip=page.evaluate(CLIP_JS, GRADE_ID), full_page=True)
        browser.close()


def main(out: str = OUT) -> None:
    nb = examples.fill(dict(examples.reference_answers(), **{GRADE_ID: ANSWER}))
    root = tempfile.mkdtemp(prefix="tarea2-captura-")
    try:
        print("corrigiendo una entrega de ejemplo en", root)
        course = servidor.graded_course(os.path.join(root, "curso"), {STUDENT: nb})
        token = "captura"
        with servidor.jupyter_server(course.root, token, os.path.join(root, "jupyter.log")) as base:
            sid = servidor.submission_id(course.root, nbgrader_run.course_id(course), STUDENT)
            screenshot("{}/formgrader/submissions/{}/?token={}".format(base, sid, token), out)
        print("escrito", out)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:2])
