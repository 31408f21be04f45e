"""The feedback page without nbconvert's whole-page BeautifulSoup round trip.

nbconvert's ``HTMLExporter.from_notebook_node`` renders the template and then parses the whole
page with BeautifulSoup (``html.parser``), only to give ``alt="No description has been provided
for this image"`` to ``<img>`` tags that have none and ``tabindex="0"`` to
``.jp-Notebook div.jp-Cell-inputWrapper`` / ``div.jp-OutputArea-output``, and serializes the tree
again.  For a feedback page (~110k tags, mostly highlighted code) that was about 60% of the
export's CPU time (``nbgrader generate_feedback`` on 14 graded students of the real course, 2 cores:
1.31 s -> 0.53 s per student).

:class:`FeedbackHTMLExporter` (``c.GenerateFeedback.exporter_class`` in nbgrader_config.py)
renders the same page without it:

* image outputs (``image/png``, ``image/jpeg``) that the template would write without ``alt``
  get that text as their ``alt`` metadata before rendering, so the classic template writes it
  (``get_metadata('alt', ...)`` in ``classic/base.html.j2``);
* the rendered page is then checked, cheaply and conservatively, for anything the whole-page
  pass would still change: an ``<img`` (ASCII, any case) that ``html.parser``, the tokenizer
  BeautifulSoup uses, reads as an ``img`` start tag without ``alt`` (or cannot read), a
  ``jp-Notebook`` class (the tabindex selectors need one; nbgrader's classic-based ``feedback``
  template has none), or a ``class`` value holding a character reference (which could spell
  one).  If anything is found, nbconvert's own pass runs on that page, unchanged.  A student
  markdown answer with a raw ``<img src=...>`` therefore costs what it always did.

Where the pass does not run, the page is the template's output as is: the bytes
BeautifulSoup parsed before (with the ``alt`` attributes above), so the same tree (``tests/test_retro_html.py``), with the
sanitizing (``c.HTMLExporter.sanitize_html``, ``tarea2_grader.engine.inert``) done where it always
was, in the template filters and in the grader; nothing here edits HTML text.

All of it is the fast path ``retro_html`` (:mod:`tarea2_grader.integration.fastpaths`): with it
off (switched off, or nbconvert's code it relies on changed) :class:`FeedbackHTMLExporter` is
nbconvert's ``HTMLExporter``, every method nbconvert's own.

The same code and markdown come back in every page of a class (the statement, the given code,
the tests, and every answer that kept the starter code), and one ``nbgrader generate_feedback``
process renders many students.  Syntax highlighting (pygments) and markdown rendering (mistune)
were about half of a page's CPU time (0.19 s and 0.07 s of 0.52 s per student), and both are pure
functions of their input: :class:`FeedbackHTMLExporter` keeps, for the life of the process, the
HTML they gave for each input and gives it again (:class:`RenderMemo`).  An input is only
remembered where nothing else can change the result: the cell's source text, the lexer name, the
cell's ``magics_language``, the formatter, markdown and lexer options; a markdown cell with
attachments, or with ``embed_images`` (which reads files), is always rendered anew.  What is
reused is exactly the text the filter returned before, so the page is the same bytes
(``tests/test_retro_memo.py``); the sanitizer (``clean_html``) is not memoized and still runs on
every output it ran on.

nbconvert validates the notebook (and repairs missing or repeated cell ids) after every
preprocessor; after the two that cannot make a valid notebook invalid (nbconvert's CSS header
one, which does not touch it, and ``pauta.RemoveRubricCells``, which only drops cells) it is
skipped when the validation just before passed (:meth:`FeedbackHTMLExporter.keeps_valid`).
"""
import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser

from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.metadata import get_metadata
from traitlets import Bool

from tarea2_grader.integration import fastpaths

PATH = "retro_html"
MISSING_ALT = "No description has been provided for this image"
IMAGE_MIMES = ("image/png", "image/jpeg")
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"

_IMG_OPEN = re.compile(r"<[iI][mM][gG]")
_JP_NOTEBOOK = re.compile(r"jp-notebook", re.IGNORECASE)
# A class attribute (as html.parser's attrfind_tolerant reads names and values) whose value holds "&".
_CLASS_WITH_REFERENCE = re.compile(
    r"""(?<=['"\s/])class\s*=+\s*(?:'[^']*&|"[^"]*&|(?!['"])[^>\s]*&)""", re.IGNORECASE)

class _OneStartTag(HTMLParser):
    """html.parser reading just the start tag at one position of a page (what BeautifulSoup gets)."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=False)
        self.rawdata = page
        self.tag = None

    def handle_starttag(self, tag, attrs):
        self.tag = (tag, attrs)

    def handle_startendtag(self, tag, attrs):
        self.tag = (tag, attrs)


def img_without_alt_at(page: str, i: int) -> bool:
    """Whether the ``<img`` at ``page[i]`` could be an ``img`` element without ``alt`` for html.parser.

    Parsed as html.parser parses a start tag met in text (``parse_starttag``); a tag that reads
    as text or as another element is no such image, and one it cannot read counts as one.
    """
    parser = _OneStartTag(page)
    try:
        end = parser.parse_starttag(i)
    except Exception:  # html.parser gives up here: let BeautifulSoup decide
        return True
    if end < 0:
        return True
    if parser.tag is None or parser.tag[0] != "img":
        return False
    return not any(name == "alt" for name, _value in parser.tag[1])


def page_needs_stock_pass(page: str) -> bool:
    """Whether nbconvert's BeautifulSoup pass could change anything on ``page``."""
    if _JP_NOTEBOOK.search(page) or _CLASS_WITH_REFERENCE.search(page):
        return True
    return any(img_without_alt_at(page, m.start()) for m in _IMG_OPEN.finditer(page))


def _first_shown(data, priority):
    """The type the template shows of a display bundle: the first of the priority list it has
    (a widget view is taken as not shown: this only counts images for a log line)."""
    for mime in priority:
        if mime in data and mime != WIDGET_VIEW_MIMETYPE:
            return mime
    return None


def describe_images(nb, priority) -> int:
    """Give image outputs the template would write without ``alt`` the text nbconvert adds.

    Mirrors the classic template: ``(output | get_metadata('alt', mime)) or (cell |
    get_metadata('alt'))``, no ``alt`` attribute when that is None.  Returns how many shown
    images got one (the count nbconvert's warning gives).
    """
    added = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs") or []:
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            data = output.get("data") or {}
            for mime in IMAGE_MIMES:
                if mime not in data:
                    continue
                if (get_metadata(output, "alt", mime) or get_metadata(cell, "alt")) is not None:
                    continue
                meta = output.get("metadata")
                if meta is None:
                    output["metadata"] = meta = {}
                if not isinstance(meta, dict):
                    continue  # left as it is: the check after rendering sees it
                per_mime = meta.setdefault(mime, {})
                if not isinstance(per_mime, dict):
                    continue
                per_mime["alt"] = MISSING_ALT
                if _first_shown(data, priority) == mime:
                    added += 1
    return added


def _options_key(options):
    """A dict of options as a key (None if it cannot be written as JSON, so never remembered)."""
    try:
        return json.dumps(options, sort_keys=True)
    except (TypeError, ValueError):
        return None


class RenderMemo:
    """HTML already rendered in this process, by the exact input that gave it.

    Bounded: once ``max_chars`` characters of HTML are kept, new results are no longer stored
    (they are still computed and returned).  ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, max_chars: int = 64 * 1024 * 1024):
        self.max_chars = max_chars
        self.chars = 0
        self.hits = 0
        self.misses = 0
        self._kept = {}

    def get(self, key, compute):
        """The HTML for ``key``, from ``compute()`` the first time (``key`` None: always computed)."""
        if key is None:
            return compute()
        found = self._kept.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        html = compute()
        if isinstance(html, str) and self.chars + len(html) <= self.max_chars:
            self._kept[key] = html
            self.chars += len(html)
        return html


class MemoHighlight2HTML(Highlight2HTML):
    """nbconvert's ``highlight_code`` filter that gives again what it gave for the same input.

    ``Highlight2HTML.__call__`` depends on the source, the language (else the notebook's lexer),
    the cell's ``magics_language`` (for IPython lexers) and ``extra_formatter_options``: the key
    holds all of them.
    """

    def __init__(self, memo: RenderMemo, pygments_lexer=None, **kwargs):
        self.memo = memo
        super().__init__(pygments_lexer=pygments_lexer, **kwargs)

    def key(self, source, language=None, metadata=None):
        """The memo key of one call (None: not remembered)."""
        if type(source) is not str or not (language is None or type(language) is str):
            return None
        if metadata is not None and not isinstance(metadata, Mapping):
            return None
        magics = "absent"
        if metadata and "magics_language" in metadata:
            magics = _options_key(["present", metadata["magics_language"]])
        options = _options_key(dict(self.extra_formatter_options))
        if magics is None or options is None:
            return None
        return ("highlight", source, language or self.pygments_lexer, magics, options)

    def __call__(self, source, language=None, metadata=None):
        return self.memo.get(self.key(source, language, metadata),
                             lambda: super(MemoHighlight2HTML, self).__call__(source, language, metadata))


class FeedbackHTMLExporter(HTMLExporter):
    """``HTMLExporter`` that skips the whole-page BeautifulSoup pass where it would change nothing.

    Configured like ``HTMLExporter`` (its ``c.HTMLExporter.*`` settings, e.g. ``sanitize_html``
    and nbgrader's ``template_name = 'feedback'``, apply to it).  ``used_stock_pass`` tells
    whether the last page needed nbconvert's pass.
    """

    memoize = Bool(True, help="Give again the highlighted code and rendered markdown of an input "
                   "already rendered by this exporter (see RenderMemo).").tag(config=True)
    used_stock_pass = None
    validations_skipped = 0
    _validated = False
    _memo = None

    @property
    def memo(self) -> RenderMemo:
        """Highlighted code and rendered markdown kept for the life of this exporter."""
        if self._memo is None:
            self._memo = RenderMemo()
        return self._memo

    def markdown_key(self, context, source):
        """The memo key of a ``markdown2html`` call (None: rendered anew).

        ``HTMLExporter.markdown2html`` depends on the source, the cell's attachments, the
        notebook's folder (only read with ``embed_images``) and the exporter's anchor and lexer
        options: a cell with attachments, or ``embed_images``, is never remembered.
        """
        if type(source) is not str or self.embed_images:
            return None
        cell = context.get("cell", {})
        if not isinstance(cell, Mapping) or cell.get("attachments"):
            return None
        lexer = _options_key(dict(self.lexer_options))
        if lexer is None:
            return None
        return ("markdown", source, self.anchor_link_text, bool(self.exclude_anchor_links), lexer)

    @property
    def fast(self) -> bool:
        """Whether the fast path ``retro_html`` runs (else every method is nbconvert's)."""
        return fastpaths.active(PATH, self.config)

    @pass_context
    def markdown2html(self, context, source):
        """``HTMLExporter.markdown2html``, remembered by :meth:`markdown_key`."""
        if not self.memoize or not self.fast:
            return HTMLExporter.markdown2html(self, context, source)
        return self.memo.get(self.markdown_key(context, source),
                             lambda: HTMLExporter.markdown2html(self, context, source))

    def keeps_valid(self, preprocessor) -> bool:
        """Whether ``preprocessor`` leaves a valid notebook valid, so that nbconvert's validation
        after it (``Exporter._validate_preprocessor``) can only pass if the one before it passed.

        Only two, by exact type: nbconvert's ``CSSHTMLHeaderPreprocessor`` (it fills
        ``resources`` and does not touch the notebook; with the nbconvert the fast path knows) and
        ``pauta.RemoveRubricCells`` (it only drops cells: the schema has no minimum number of
        cells, and fewer cells hold no duplicate id).
        """
        from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

        from tarea2_grader.integration.pauta import RemoveRubricCells
        if type(preprocessor) is RemoveRubricCells:
            return True
        return type(preprocessor) is CSSHTMLHeaderPreprocessor

    def _validate_preprocessor(self, nbc, preprocessor):
        """nbconvert's validation after each preprocessor, skipped after one that keeps a notebook
        valid (:meth:`keeps_valid`) when the validation before it passed in this same run."""
        if self._validated and self.fast and self.keeps_valid(preprocessor):
            self.validations_skipped += 1
            return
        self._validated = False
        super()._validate_preprocessor(nbc, preprocessor)
        self._validated = True

    def _preprocess(self, nb, resources):
        self._validated = False  # no validation has passed yet in this run
        try:
            nb, resources = super()._preprocess(nb, resources)
        finally:
            self._validated = False
        if getattr(self, "_describe_images", False):
            self._images_described = describe_images(nb, self._priority)
        return nb, resources

    def from_notebook_node(self, nb, resources=None, **kw):
        """Convert from notebook node (as HTMLExporter does, see the module docstring)."""
        if not self.fast:
            self.used_stock_pass = True
            return super().from_notebook_node(nb, resources, **kw)
        # HTMLExporter.from_notebook_node up to its BeautifulSoup pass.
        from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight_code = self.filters.get("highlight_code")  # a configured filter is used as is
        if highlight_code is None and self.memoize:
            highlight_code = MemoHighlight2HTML(self.memo, pygments_lexer=lexer, parent=self)
        elif highlight_code is None:
            highlight_code = Highlight2HTML(pygments_lexer=lexer, parent=self)
        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources
        )
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        self._describe_images, self._images_described = True, 0
        self._priority = list(filter_data_type.display_data_priority)
        try:
            html, resources = super(HTMLExporter, self).from_notebook_node(nb, resources, **kw)
        finally:
            self._describe_images = False
        missing_alt = self._images_described
        self.used_stock_pass = self.needs_stock_pass(html)
        if self.used_stock_pass:
            html, more = self.stock_pass(html)
            missing_alt += more
        if missing_alt:
            self.log.warning("Alternative text is missing on %s image(s).", missing_alt)
        return html, resources

    def needs_stock_pass(self, html) -> bool:
        """Whether nbconvert's pass could change ``html`` (see :func:`page_needs_stock_pass`)."""
        return page_needs_stock_pass(html)

    @staticmethod
    def stock_pass(html):
        """nbconvert's pass (HTMLExporter.from_notebook_node): the page and the images it gave ``alt``."""
        from bs4 import BeautifulSoup
        soup = BeautifulSoup(html, features="html.parser")
        missing_alt = 0
        for elem in soup.select("img:not([alt])"):
            elem.attrs["alt"] = MISSING_ALT
            missing_alt += 1
        for elem in soup.select(".jp-Notebook div.jp-Cell-inputWrapper"):
            elem.attrs["tabindex"] = "0"
        for elem in soup.select(".jp-Notebook div.jp-OutputArea-output"):
            elem.attrs["tabindex"] = "0"
        return str(soup), missing_alt
