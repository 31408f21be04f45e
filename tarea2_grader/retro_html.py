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
sanitizing (``c.HTMLExporter.sanitize_html``, ``tarea2_grader.inert``) done where it always
was, in the template filters and in the grader; nothing here edits HTML text.

If nbconvert's ``HTMLExporter.from_notebook_node`` is not the version this was written against
(its source hash differs), the stock method runs instead.
"""
import hashlib
import inspect
import re
from html.parser import HTMLParser

from nbconvert.exporters import HTMLExporter
from nbconvert.filters.metadata import get_metadata

MISSING_ALT = "No description has been provided for this image"
# sha256 of the source of HTMLExporter.from_notebook_node (nbconvert 7.17.2) that the fast path
# replicates: the rendering setup before the BeautifulSoup pass, and the pass itself.
STOCK_SOURCE_SHA256 = "3dccafff45cc4e749766089c7de2f5385ac071e03f4f5a15bfb3b025f54893b9"
IMAGE_MIMES = ("image/png", "image/jpeg")
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"

_IMG_OPEN = re.compile(r"<[iI][mM][gG]")
_JP_NOTEBOOK = re.compile(r"jp-notebook", re.IGNORECASE)
# A class attribute (as html.parser's attrfind_tolerant reads names and values) whose value holds "&".
_CLASS_WITH_REFERENCE = re.compile(
    r"""(?<=['"\s/])class\s*=+\s*(?:'[^']*&|"[^"]*&|(?!['"])[^>\s]*&)""", re.IGNORECASE)

_stock_known = []
_warned = []


def stock_method_known() -> bool:
    """True if nbconvert's HTMLExporter.from_notebook_node is the one the fast path replicates."""
    if not _stock_known:
        try:
            source = inspect.getsource(HTMLExporter.from_notebook_node)
            _stock_known.append(hashlib.sha256(source.encode()).hexdigest() == STOCK_SOURCE_SHA256)
        except (OSError, TypeError):
            _stock_known.append(False)
    return _stock_known[0]


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


class FeedbackHTMLExporter(HTMLExporter):
    """``HTMLExporter`` that skips the whole-page BeautifulSoup pass where it would change nothing.

    Configured like ``HTMLExporter`` (its ``c.HTMLExporter.*`` settings, e.g. ``sanitize_html``
    and nbgrader's ``template_name = 'feedback'``, apply to it).  ``used_stock_pass`` tells
    whether the last page needed nbconvert's pass.
    """

    used_stock_pass = None

    def _preprocess(self, nb, resources):
        nb, resources = super()._preprocess(nb, resources)
        if getattr(self, "_describe_images", False):
            self._images_described = describe_images(nb, self._priority)
        return nb, resources

    def from_notebook_node(self, nb, resources=None, **kw):
        """Convert from notebook node (as HTMLExporter does, see the module docstring)."""
        if not stock_method_known():
            if not _warned:
                _warned.append(True)
                self.log.warning("HTMLExporter.from_notebook_node de nbconvert no es la versión que conoce "
                                 "tarea2_grader.retro_html: la retroalimentación se genera con él, tal cual")
            self.used_stock_pass = True
            return super().from_notebook_node(nb, resources, **kw)
        # HTMLExporter.from_notebook_node up to its BeautifulSoup pass.
        from nbconvert.filters.highlight import Highlight2HTML
        from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight_code = self.filters.get(
            "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
        )
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
