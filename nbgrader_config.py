"""nbgrader configuration for Tarea 2 "Back to training".

Plain nbgrader commands (run from this folder with the virtual environment's
``bin/`` on PATH) use this file; the Makefile and ``tarea2_grader`` use it too.
"""
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "deep-learning-tarea2"

# Spanish stubs in the student release.
c.ClearSolutions.code_stub = {
    "python": "# TU CÓDIGO AQUÍ\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "TU RESPUESTA AQUÍ"

# torch takes a few seconds to import and the training tests need a few more;
# an infinite loop still costs only the cell it is in.
c.Execute.timeout = 120
c.Execute.startup_timeout = 120

# A warning printed on stderr (torch, matplotlib, tqdm) must not zero a test
# cell that passed: nbgrader scores any stderr output as a failure.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(Warning|warn|it/s|s/it|%\|)"

# Test cells the student deleted are put back and graded.
c.OverwriteCells.add_missing_cells = True

# Students never need the hidden tests in their feedback.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# LMS bulk downloads: Moodle-style folders (or plain <student_id>/ folders) and any
# notebook name ("Copia de tarea2.ipynb"); see tarea2_grader/collect.py to adapt
# the pattern, e.g. c.LmsCollectorPlugin.named_regexp = r"...(?P<student_id>...)...".
c.ZipCollectApp.collector_plugin = "tarea2_grader.collect.LmsCollectorPlugin"
