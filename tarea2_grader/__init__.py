"""Grading code for Tarea 2 "Back to training": hidden tests, checks and the instructor pipeline."""
from tarea2_grader.arranque import lazy_rfc3987 as _lazy_rfc3987

_lazy_rfc3987()  # before anything here imports nbformat (see arranque)
