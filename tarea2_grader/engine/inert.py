"""Student content made inert before anyone's browser renders it (formgrader, feedback HTML).

A student's markdown answers and cell outputs end up in pages that instructors open in their
logged-in Jupyter session; an inline script or event handler there would act as the
instructor.  The trusted grader stores in the autograded notebook only:

* markdown with its Markdown and LaTeX intact, but every HTML tag outside a short safe list
  escaped (so it shows as text), no attributes but plain links and images, and no
  ``javascript:``/``vbscript:``/``data:`` link targets;
* outputs reduced to text, Markdown (made inert the same way), LaTeX and raster images: no HTML,
  JavaScript, SVG or widget state.
"""
import re

import bleach

SAFE_TAGS = {"b", "i", "em", "strong", "code", "pre", "p", "br", "hr", "sub", "sup", "ul", "ol", "li",
             "table", "thead", "tbody", "tr", "td", "th", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
             "img", "a", "span", "div"}
SAFE_ATTRIBUTES = {"img": ["src", "alt", "title", "width", "height"], "a": ["href", "title"]}
SAFE_PROTOCOLS = {"http", "https", "mailto", "attachment"}
SAFE_OUTPUT_MIMES = ("text/plain", "text/markdown", "text/latex", "image/png", "image/jpeg", "image/gif")
SAFE_ATTACHMENT_MIMES = ("image/png", "image/jpeg", "image/gif")
# Notebook metadata that nbconvert turns into active content: the widget state is embedded with a
# widget manager script that renders it (an HTML widget's value is raw HTML).
ACTIVE_NOTEBOOK_METADATA = ("widgets",)
_ATTACHMENT_REF = re.compile(r"attachment:([^)\s\"'>]+)")
_BAD_LINK = re.compile(r"(\]\(\s*<?|^\s*\[[^\]]*\]:\s*<?)\s*(javascript|vbscript|data|file)\s*:", re.I | re.M)


def _harmless_unescaped(text: str) -> str:
    """Put back the ``>``, ``<`` and ``&`` that bleach escaped where they cannot start markup.

    LaTeX needs them (``x > 0``, ``a < b``, ``1 & x``) and nbconvert escapes math itself; an HTML
    tag, comment or entity starts only with ``<`` before a letter, ``/``, ``!`` or ``?``, or with
    ``&`` before a name, so those stay escaped.
    """
    text = text.replace("&gt;", ">")
    text = re.sub(r"&lt;(?![A-Za-z/!?]|&lt;)", "<", text)
    return re.sub(r"&amp;(?=[\s\\])", "&", text)


def markdown(source: str) -> str:
    """Markdown with no active HTML and no script links."""
    text = bleach.clean(source or "", tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES, protocols=SAFE_PROTOCOLS,
                        strip=False, strip_comments=True)
    text = _harmless_unescaped(text)
    return _BAD_LINK.sub(lambda m: m.group(1) + "#enlace-desactivado-", text)


def bundle(data: dict) -> dict:
    """A display/execute_result bundle with only inert types (text/html becomes text/plain if
    there is no plain version)."""
    out = {}
    for mime in SAFE_OUTPUT_MIMES:
        if mime in data and isinstance(data[mime], (str, list)):
            value = data[mime] if isinstance(data[mime], str) else "".join(map(str, data[mime]))
            out[mime] = markdown(value) if mime == "text/markdown" else value
    if "text/plain" not in out and isinstance(data.get("text/html"), str):
        out["text/plain"] = bleach.clean(data["text/html"], tags=set(), strip=True)
    return out


def unresolved_attachments_disabled(source: str, attachments: dict) -> str:
    """Links to attachments that are not (or no longer) there point nowhere instead.

    nbconvert refuses to render a notebook whose markdown names a missing attachment, or one left
    with no types: the whole formgrader page and feedback of that student would fail.
    """
    return _ATTACHMENT_REF.sub(lambda m: m.group(0) if m.group(1) in attachments else "#adjunto-desactivado",
                               source)


def markdown_cell(cell) -> bool:
    """Make a markdown cell inert in place (source and attachments); True if anything changed."""
    before = (cell.get("source"), cell.get("attachments"))
    cell["source"] = markdown(cell.get("source", ""))
    attachments = cell.get("attachments") or {}
    if attachments:
        kept = {name: {m: v for m, v in bundle_.items() if m in SAFE_ATTACHMENT_MIMES and isinstance(v, str)}
                for name, bundle_ in attachments.items() if isinstance(bundle_, dict)}
        cell["attachments"] = {name: bundle_ for name, bundle_ in kept.items() if bundle_}
    cell["source"] = unresolved_attachments_disabled(cell["source"], cell.get("attachments") or {})
    return before != (cell.get("source"), cell.get("attachments"))


def notebook_metadata(nb) -> bool:
    """Drop the notebook metadata that would become active content; True if anything was dropped."""
    found = [key for key in ACTIVE_NOTEBOOK_METADATA if key in nb.metadata]
    for key in found:
        del nb.metadata[key]
    return bool(found)
