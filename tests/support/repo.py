"""Where the tests find the repository's files, and how they load the test libraries.

The libraries (``submissions/`` and ``attacks/`` beside this module) are student code: they are
loaded from their files under a name the caller picks, never imported as test modules.
"""
import importlib.util
import os

SUPPORT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(SUPPORT))
SOURCE_NB = os.path.join(REPO, "source", "tarea2", "tarea2.ipynb")
SUBMISSIONS = os.path.join(SUPPORT, "submissions")
ATTACKS_PY = os.path.join(SUPPORT, "attacks", "attacks.py")


def load_file(path, module_name):
    """A fresh module run from the Python file at ``path`` under ``module_name`` (not in sys.modules)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_submissions(name, prefix="tarea2_submissions"):
    """A fresh copy of the library ``submissions/<name>.py`` (``wrong``, ``alt_correct``, ``honest``)."""
    return load_file(os.path.join(SUBMISSIONS, name + ".py"), "{}_{}".format(prefix, name))
