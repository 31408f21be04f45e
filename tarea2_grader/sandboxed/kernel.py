"""The student's cells inside the sandbox: an IPython shell whose outputs are recorded as data.

Part of the sandboxed agent (:mod:`agent`): run inside bubblewrap beside it, it imports only the
boundary's codec (:mod:`protocol`).  :func:`make_shell` builds the shell once, in the anchor;
:func:`run_cell` runs one cell in the holder and returns its nbformat-shaped outputs, which
:func:`shrink_outputs` keeps within the sizes the supervisor asked for.
"""
import base64
import io
import json
import os
import signal
import sys

if __package__:  # imported as tarea2_grader.sandboxed.kernel (the test suite)
    from tarea2_grader.sandboxed import protocol
else:  # inside the sandbox: the agent's files are bound side by side at /run/tarea2
    import protocol


def _plain(text, limit=200000):
    return text if len(text) <= limit else text[:limit] + "\n[... salida recortada ...]\n"


def shrink_outputs(outputs, max_output, max_cell):
    """Replace the outputs over ``max_output`` bytes of content, and those past ``max_cell`` for the
    cell, by a stand-in that records their size (measured as the supervisor measures it,
    :func:`protocol.content_size`): the reply stays small and the supervisor writes the note."""
    total = 0
    for i, out in enumerate(outputs):
        size = protocol.content_size(out)
        if size > max_output or total + size > max_cell:
            if out.get("output_type") == "stream" and total + max_output <= max_cell:
                text = out.get("text", "")[:max_output]
                outputs[i] = {"output_type": "stream", "name": out.get("name"), "text": text,
                              "resto": protocol.OMITTED_PREFIX + str(max(0, size - protocol.text_size(text)))}
            else:
                outputs[i] = {"output_type": "display_data", "metadata": {},
                              "data": {"text/plain": protocol.OMITTED_PREFIX + str(size)}}
        total += protocol.content_size(outputs[i])
    return outputs


class _Stream(io.TextIOBase):
    """sys.stdout / sys.stderr stand-in that appends stream outputs to the cell's record."""

    def __init__(self, name, outputs):
        self.name, self._outputs = name, outputs

    def writable(self):
        return True

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def write(self, s):
        if not isinstance(s, str):
            s = str(s)
        if not s:
            return 0
        last = self._outputs[-1] if self._outputs else None
        if last is not None and last.get("output_type") == "stream" and last.get("name") == self.name \
                and "parts" in last:
            if last["kept"] <= Cell.max_output:  # past it, only the size is kept
                last["parts"].append(s)
                last["kept"] += len(s)
            else:
                last["dropped"] += len(s)
        else:
            self._outputs.append({"output_type": "stream", "name": self.name, "parts": [s], "kept": len(s),
                                  "dropped": 0})
        return len(s)

    @staticmethod
    def finish(outputs):
        """Join each stream's pieces into its text (a string grown piece by piece costs quadratic time)."""
        for out in outputs:
            if isinstance(out, dict) and isinstance(out.get("parts"), list):
                out["text"] = "".join(str(p) for p in out.pop("parts"))
                out.pop("kept", None)
                dropped = out.pop("dropped", 0)
                if isinstance(dropped, int) and dropped > 0:
                    out["resto"] = protocol.OMITTED_PREFIX + str(dropped)

    def flush(self):
        pass


def _jsonable_bundle(data):
    out = {}
    for mime, value in (data or {}).items():
        if not isinstance(mime, str):
            continue
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        if isinstance(value, (str, list, dict, int, float, bool)) or value is None:
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            out[mime] = value
    return out


class Cell:
    """Outputs of the cell being run (nbformat-shaped dicts)."""

    outputs = []
    max_output = 2 * 1000 * 1000  # characters one stream keeps (the request's max_output)


def make_shell(workdir):
    """An IPython shell whose displays, results and tracebacks land in ``Cell.outputs``."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            Cell.outputs.append({"output_type": "display_data", "data": _jsonable_bundle(data),
                                 "metadata": _jsonable_bundle(metadata or {})})

        def clear_output(self, wait=False):
            del Cell.outputs[:]

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            Cell.outputs.append({"output_type": "execute_result", "execution_count": self.prompt_count,
                                 "data": _jsonable_bundle(format_dict), "metadata": {}})

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        def system(self, cmd):
            """``!cmd`` and ``%pip``: grading runs no other process (a Colab ``!pip install`` is harmless)."""
            print("(durante la corrección no se ejecutan comandos del sistema: !{})".format(str(cmd)[:200]))

        system_piped = system_raw = system

        def getoutput(self, cmd, split=True, depth=0):
            self.system(cmd)
            return []

        def enable_gui(self, gui=None):
            """``%matplotlib inline`` (Colab's default) needs no event loop, and grading opens no windows."""

        def _showtraceback(self, etype, evalue, stb):
            Cell.outputs.append({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                                 "evalue": _plain(str(evalue), 4000),
                                 "traceback": [_plain(self.InteractiveTB.stb2text(stb), 20000)]})

        def showsyntaxerror(self, filename=None, running_compiled_code=False):
            etype, value, _tb = self._get_exc_info()
            Cell.outputs.append({"output_type": "error", "ename": etype.__name__,
                                 "evalue": _plain(str(value), 4000),
                                 "traceback": ["{}: {}".format(etype.__name__, value)]})

    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    cfg.HistoryManager.enabled = False
    cfg.InteractiveShell.colors = "nocolor"
    cfg.InteractiveShell.xmode = "Plain"
    cfg.InteractiveShell.autocall = 0
    # instance(): display(), plt.show() and get_ipython() find this shell, not a new default one
    shell = Shell.instance(config=cfg, ipython_dir=os.path.join(workdir, ".ipython"),
                           display_pub_class=Publisher, displayhook_class=Hook)
    try:
        shell.enable_matplotlib("inline")
    except Exception:  # matplotlib is optional for the student's code
        pass
    return shell


def reset_process_signals():
    """Undo what a finished cell may have armed in this process (alarms, handlers)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    signal.setitimer(signal.ITIMER_PROF, 0)
    for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGVTALRM, signal.SIGPROF):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    sys.settrace(None)
    sys.setprofile(None)


def run_cell(shell, source):
    """Run one cell in the shell; return its outputs."""
    Cell.outputs = outputs = []
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream("stdout", outputs), _Stream("stderr", outputs)
    try:
        shell.run_cell(source, store_history=True, silent=False)
    except BaseException as exc:  # IPython machinery itself failed
        outputs.append({"output_type": "error", "ename": type(exc).__name__, "evalue": str(exc)[:4000],
                        "traceback": []})
    finally:
        sys.stdout, sys.stderr = saved
        _Stream.finish(outputs)
    return outputs

