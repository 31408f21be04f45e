"""FeedbackHTMLExporter gives the page nbconvert's HTMLExporter gives, without its whole-page pass.

The graded fake class (conftest's ``graded_class``) is rendered in this process with both
exporters, configured as ``nbgrader generate_feedback`` configures them (the course's
nbgrader_config.py, nbgrader's feedback template, the feedback preprocessors and the
gradebook); both pages, parsed by BeautifulSoup, must be the same tree.  Some autograded
notebooks get, in memory only, images without ``alt`` (outputs and raw markdown ``<img>``) and
``jp-Notebook`` markup, the things nbconvert's pass changes.
"""
import os

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from tarea2_grader.integration import fastpaths, nbgrader_run, retro_html
from tarea2_grader.integration.course import Course
from tarea2_grader.integration.retro_html import MISSING_ALT, FeedbackHTMLExporter

from tests.support.feedback import render_feedback
from tests.support.repo import REPO

STOCK = "nbconvert.exporters.HTMLExporter"
MINE = "tarea2_grader.integration.retro_html.FeedbackHTMLExporter"
GRADED = ("1001", "1003", "1004", "1005")
# A 1x1 PNG (the template only embeds the base64 text).
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def tree(page: str) -> str:
    """The page as BeautifulSoup (html.parser) reads it, written out."""
    return BeautifulSoup(page, "html.parser").decode()


def assert_same_tree(stock: str, mine: str):
    a, b = tree(stock).splitlines(), tree(mine).splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, "line {}:\nstock: {}\nmine:  {}".format(i, x[:300], y[:300])
    assert len(a) == len(b)


def autograded(course, student):
    return nbformat.read(course.autograded_nb(student), as_version=4)


def image(mime, meta=None, kind="display_data"):
    if kind == "execute_result":
        return new_output(kind, data={mime: PNG, "text/plain": "<Figure>"}, metadata=meta or {}, execution_count=1)
    return new_output(kind, data={mime: PNG, "text/plain": "<Figure>"}, metadata=meta or {})


def with_image_outputs(nb):
    """Plots the template writes without alt (3), with the output's or the cell's alt, and markdown
    images that already have one."""
    plots = new_code_cell("graficar()", outputs=[
        image("image/png"),                                        # no alt anywhere
        image("image/png", {"image/png": {"alt": ""}}),            # "" or (no cell alt) -> none
        image("image/jpeg", {"image/jpeg": {"width": 40}}, "execute_result"),
        image("image/png", {"alt": "curva de pérdida"}),           # the output's own alt
        new_output("display_data", data={"text/html": "<b>tabla</b>", "image/png": PNG}),  # HTML shown
    ])
    captioned = new_code_cell("graficar()", metadata={"alt": ""}, outputs=[image("image/png")])  # alt=""
    markdown = new_markdown_cell('Mi gráfico: ![pérdida](perdida.png) y <img src="x.png" alt="dibujo">')
    md_output = new_code_cell("display(Markdown(...))", outputs=[
        new_output("display_data", data={"text/markdown": "![](a.png)", "text/plain": "md"})])
    nb.cells += [plots, captioned, markdown, md_output]
    return nb


def test_the_fast_path_matches_this_nbconvert():
    """If nbconvert's code the exporter relies on changes, this fails: check the new one and
    update retro_html and its hashes in fastpaths.PATHS (until then the exporter is nbconvert's)."""
    assert fastpaths.first_change(fastpaths.PATHS["retro_html"]) is None


@pytest.mark.slow
def test_the_course_config_uses_it_with_the_html_exporter_settings(graded_class):
    cfg = nbgrader_run.load_config(Course(REPO))
    assert cfg.GenerateFeedback.exporter_class == MINE
    _, exporter = render_feedback(graded_class, "1001", cfg.GenerateFeedback.exporter_class)
    assert type(exporter) is FeedbackHTMLExporter
    assert exporter.sanitize_html is True and exporter.template_name == "feedback"


@pytest.mark.slow
@pytest.mark.parametrize("student", GRADED)
def test_graded_class_pages_are_the_stock_pages(graded_class, student):
    stock, _ = render_feedback(graded_class, student, STOCK)
    mine, exporter = render_feedback(graded_class, student, MINE)
    assert exporter.used_stock_pass is False
    assert mine != stock  # not BeautifulSoup's serialization: the template's output as is
    assert_same_tree(stock, mine)


@pytest.mark.slow
def test_pages_nbgrader_wrote_are_the_stock_pages(graded_class):
    """The feedback the class got (nbgrader generate_feedback, the course config) is the stock page."""
    with open(graded_class.path("feedback", "1003", "tarea2", "tarea2.html"), encoding="utf-8") as fh:
        written = fh.read()
    stock, _ = render_feedback(graded_class, "1003", STOCK)
    assert written != stock and tree(written) != written
    assert_same_tree(stock, written)


@pytest.mark.slow
def test_image_outputs_without_alt_get_nbconverts_text_from_the_template(graded_class):
    nb = with_image_outputs(autograded(graded_class, "1003"))
    stock, _ = render_feedback(graded_class, "1003", STOCK, nb)
    mine, exporter = render_feedback(graded_class, "1003", MINE, nb)
    assert exporter.used_stock_pass is False
    assert mine.count('alt="{}"'.format(MISSING_ALT)) == 3  # written by the template
    assert tree(stock).count('alt="{}"'.format(MISSING_ALT)) == 3  # added by nbconvert's pass
    assert 'alt="curva de pérdida"' in mine and 'alt="dibujo"' in mine and 'alt="pérdida"' in mine
    assert_same_tree(stock, mine)


@pytest.mark.slow
def test_raw_markdown_image_without_alt_gets_the_stock_pass(graded_class):
    nb = autograded(graded_class, "1004")
    nb.cells.append(new_markdown_cell('Así quedó: <img src="grafico.png" width="200">'))
    stock, _ = render_feedback(graded_class, "1004", STOCK, nb)
    mine, exporter = render_feedback(graded_class, "1004", MINE, nb)
    assert exporter.used_stock_pass is True
    assert 'alt="{}"'.format(MISSING_ALT) in stock
    assert_same_tree(stock, mine)


@pytest.mark.slow
def test_jp_notebook_markup_gets_the_stock_pass(graded_class):
    """nbconvert makes jp-Notebook inputs and outputs focusable; a class spelled with a character
    reference counts too."""
    nb = autograded(graded_class, "1005")
    nb.cells.append(new_markdown_cell('<div class="jp-&#78;otebook"><div class="jp-Cell-inputWrapper">x</div>'
                                      '<div class="jp-OutputArea-output">y</div></div>'))
    stock, _ = render_feedback(graded_class, "1005", STOCK, nb)
    mine, exporter = render_feedback(graded_class, "1005", MINE, nb)
    assert exporter.used_stock_pass is True
    assert stock.count('tabindex="0"') == 2
    assert_same_tree(stock, mine)


@pytest.mark.slow
def test_svg_output_gets_the_stock_pass(graded_class):
    """The template writes an SVG output as an <img> it gives no alt (no metadata for it)."""
    nb = autograded(graded_class, "1001")
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><circle r="2"/></svg>'
    nb.cells.append(new_code_cell("SVG(...)", outputs=[new_output("display_data", data={"image/svg+xml": svg})]))
    stock, _ = render_feedback(graded_class, "1001", STOCK, nb)
    mine, exporter = render_feedback(graded_class, "1001", MINE, nb)
    assert exporter.used_stock_pass is True
    assert 'alt="{}"'.format(MISSING_ALT) in stock
    assert_same_tree(stock, mine)


# (snippet, whether nbconvert's pass changes it, whether page_needs_stock_pass says it could).
# Where the check cannot tell (an <img inside an attribute value, the words jp-Notebook in text)
# it says yes: the pass then runs and changes nothing.
SNIPPETS = [
    ("<p>texto sin imágenes</p>", False, False),
    ('<img src="a.png" alt="b">', False, False),
    ("<IMG SRC=a.png ALT=b>", False, False),
    ("<img alt src=a.png>", False, False),
    ('<img src="a.png" alt="">', False, False),
    ('<img src="a.png">', True, True),
    ("<IMG src=a.png>", True, True),
    ('<img src="a alt=b.png">', True, True),
    ('<img/src="a.png">', True, True),
    ("<img\nsrc=a.png\n>", True, True),
    ('<img src="a.png"/>', True, True),
    ("&lt;img src=a.png&gt;", False, False),
    ("<imgx src=a.png>", False, False),
    ('<p title="<img src=a.png>">x</p>', False, True),
    ('<div class="jp-Notebook"><div class="jp-Cell-inputWrapper">x</div></div>', True, True),
    ('<div class="x jp-Notebook y"><div><div class="jp-OutputArea-output">x</div></div></div>', True, True),
    ('<div class="jp-&#78;otebook"><div class="jp-Cell-inputWrapper">x</div></div>', True, True),
    ("<div id=x class=jp-&#x4e;otebook><div class=jp-Cell-inputWrapper>x</div></div>", True, True),
    ('<div data-class="a&amp;b">x</div>', False, False),
    ('<span class="n">a</span> &amp; <span class="o">b</span>', False, False),
    ('<div class="jp-Cell-inputWrapper">sin contenedor</div>', False, False),
    ("<p>la clase jp-Notebook de JupyterLab</p>", False, True),
]


@pytest.mark.parametrize("snippet,changed,needs", SNIPPETS)
def test_the_check_finds_whatever_the_stock_pass_changes(snippet, changed, needs):
    page = "<!DOCTYPE html>\n<html><body>\n{}\n</body></html>".format(snippet)
    assert (tree(FeedbackHTMLExporter.stock_pass(page)[0]) != tree(page)) == changed
    assert retro_html.page_needs_stock_pass(page) == needs


@pytest.mark.slow
def test_another_nbconvert_gets_the_stock_method(graded_class, monkeypatch, capsys):
    ref = next(iter(fastpaths.PATHS["retro_html"].stock))
    monkeypatch.setitem(fastpaths.PATHS["retro_html"].stock, ref, "0" * 64)  # as if nbconvert changed
    monkeypatch.setattr(fastpaths, "_guards", {})
    monkeypatch.setattr(fastpaths, "_warned", set())
    nb = with_image_outputs(autograded(graded_class, "1003"))
    stock, _ = render_feedback(graded_class, "1003", STOCK, nb)
    mine, exporter = render_feedback(graded_class, "1003", MINE, nb)
    assert exporter.used_stock_pass is True and exporter.validations_skipped == 0
    assert exporter.memo.hits == exporter.memo.misses == 0
    assert mine == stock
    assert "ruta rápida 'retro_html' apagada" in capsys.readouterr().err
