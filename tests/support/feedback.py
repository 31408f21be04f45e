"""Feedback pages rendered in the test process, as ``nbgrader generate_feedback`` renders them
(the course's nbgrader_config.py, nbgrader's feedback template and preprocessors, the gradebook).
"""
import copy

import nbformat

from tarea2_grader.integration import nbgrader_run


def feedback_setup(course, preprocessors=None, memoize=True, exporter_class=None):
    """(coursedir, exporter) configured as ``nbgrader generate_feedback`` configures them (with
    other preprocessors or exporter class, and the render memo on or off)."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    cfg = nbgrader_run.load_config(course)
    if preprocessors is not None:
        cfg.GenerateFeedback.preprocessors = preprocessors
    if exporter_class is not None:
        cfg.GenerateFeedback.exporter_class = exporter_class
    cfg.FeedbackHTMLExporter.memoize = memoize
    coursedir = CourseDirectory(config=cfg)
    coursedir.root = course.root
    converter = GenerateFeedback(coursedir=coursedir, config=cfg)
    exporter = converter.exporter_class(parent=converter, config=converter.config)
    for pp in converter.preprocessors:
        exporter.register_preprocessor(pp)
    return coursedir, exporter


def render(course, coursedir, exporter, student, nb):
    """One student's page from ``nb`` (a copy is rendered), as nbgrader's converter renders it."""
    folder = coursedir.format_path(coursedir.autograded_directory, student, course.assignment)
    resources = {"unique_key": course.notebook, "output_files_dir": course.notebook + "_files",
                 "nbgrader": {"student": student, "assignment": course.assignment,
                              "notebook": course.notebook, "db_url": coursedir.db_url},
                 "metadata": {"name": course.notebook, "path": folder}}
    page, _ = exporter.from_notebook_node(copy.deepcopy(nb), resources)
    return page


def render_feedback(course, student, exporter_class, nb=None):
    """One student's feedback page rendered here as ``nbgrader generate_feedback`` renders it.

    ``nb`` replaces the autograded notebook read from disk.  Returns (page, exporter).
    """
    coursedir, exporter = feedback_setup(course, exporter_class=exporter_class)
    if nb is None:
        nb = nbformat.read(course.autograded_nb(student), as_version=4)
    return render(course, coursedir, exporter, student, nb), exporter
