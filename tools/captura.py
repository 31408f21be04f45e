"""Regenerate docs/retroalimentacion.png: the summary of one student's feedback page, in headless Chromium.

    make demo && .venv/bin/python -m tools.captura

Uses the system Chromium (Debian package ``chromium``) through Playwright, as the browser tests do.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from tarea2_grader.integration.course import Course
from tarea2_grader.integration import resumen

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def screenshot(page_path: str, out_png: str, height: int = 2400) -> None:
    """Save the summary at the top of a feedback page, as the browser shows it, as a PNG."""
    from playwright.sync_api import sync_playwright
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser_path:
        raise SystemExit("falta chromium: sudo apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": height})
        page.goto("file://" + os.path.abspath(page_path))
        summary = page.locator("#" + resumen.SUMMARY_ID)
        summary.wait_for()
        summary.screenshot(path=out_png)
        browser.close()


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--course", default=os.path.join(REPO, "demo_course"), help="curso corregido (por defecto: demo_course)")
    ap.add_argument("--alumno", default=None, help="alumno (por defecto: el del resumen de make demo)")
    ap.add_argument("--salida", default=os.path.join(REPO, "docs", "retroalimentacion.png"))
    args = ap.parse_args(argv)
    course = Course(os.path.abspath(args.course))
    student = args.alumno or resumen.example_student(course, course.students())
    if not student:
        print("no hay alumnos corregidos en " + course.root, file=sys.stderr)
        return 2
    page = course.feedback_page(student)
    screenshot(page, args.salida)
    print("captura: {} ({})".format(os.path.relpath(args.salida), student))
    return 0


if __name__ == "__main__":
    sys.exit(main())
