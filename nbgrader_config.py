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

# Fast paths: copies or bypasses of nbgrader/nbconvert internals that make grading faster, each
# selected by a class name below (Shared*, Cached*, Batched*, FeedbackHTMLExporter) or by the
# pipeline (nbgrader_cli, lotes); listed in tarea2_grader/integration/fastpaths.py.  With the master
# switch off every one of those classes is exactly its nbgrader/nbconvert base and the pipeline runs
# plain `nbgrader` (stock nbgrader, slower).  A path whose nbgrader or nbconvert source changed (an
# upgrade) switches itself off with a one-line warning ("aviso: ruta rápida ... apagada").
# Paths: arranque, nbgrader_cli, lotes, sharedgb, cellmeta, retro_html.
# The environment overrides this file: TAREA2_RAPIDO=0 (all off) / =1, TAREA2_RAPIDO_SIN=sharedgb,cellmeta.
c.FastPaths.enabled = True
c.FastPaths.disabled = []

# Trusted grading: student code runs in a sandbox (bubblewrap), never in the process that
# decides; each hidden test's verdict is computed outside it and written into its test cell,
# and nbgrader scores the cell from that.  Plain `nbgrader autograde` gets this too.
c.Autograde.autograde_preprocessors = [
    "tarea2_grader.integration.nbplugin.TrustedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "tarea2_grader.integration.sharedgb.SharedSaveAutoGrades",
    "tarea2_grader.integration.nbplugin.MarkFlaggedForReview",  # flagged test cells: formgrader lists them for a person
    "tarea2_grader.integration.sharedgb.SharedAssignLatePenalties",
    "tarea2_grader.integration.cellmeta.CachedCheckCellMetadata",
]
# The Shared* preprocessors are nbgrader's, each opening its gradebook on one SQLAlchemy engine per
# process (tables checked and queries compiled once, not once per student): tarea2_grader/integration/sharedgb.py.
# nbgrader's default sanitizing list; CachedCheckCellMetadata is nbgrader's CheckCellMetadata
# (same checks, same errors) with the JSON schema's validator built once, not once per cell.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "tarea2_grader.integration.sharedgb.SharedOverwriteKernelspec",
    "tarea2_grader.integration.sharedgb.SharedOverwriteCells",
    "tarea2_grader.integration.cellmeta.CachedCheckCellMetadata",
]
# Per-student limits (a 2-core, 24 GiB machine grading one or two students at a time).
c.TrustedExecute.cell_timeout = 15       # s per notebook cell (the reference's slowest: 0.5 s on an idle 2-core machine)
c.TrustedExecute.test_timeout = 10       # s per hidden test: a loop fails within seconds
c.TrustedExecute.timeout_after_loop = 3  # s per cell and test once one ran out of time (one loop, one limit)
# The cells after the last hidden test (plots, MNIST) cannot change an autograded point: they are
# not run again; formgrader and the feedback show the outputs the student submitted, made inert.
# c.TrustedExecute.rerun_after_last_test = True
c.TrustedExecute.memory_mb = 3072        # MiB per student process beyond torch's own
c.TrustedExecute.cpu_seconds = 600       # CPU s per student process
c.TrustedExecute.budget = 60             # s of sandbox time per student: cells, tests, rebuilds (the reference: ~1 s)
# Grading refuses to start where bubblewrap is missing or broken; uncomment to grade without isolating
# files instead (every row of grades.csv then says "sin aislamiento"):
# c.TrustedExecute.require_sandbox = False

# A warning printed on stderr (torch, matplotlib, tqdm) must not zero a test
# cell that passed: nbgrader scores any stderr output as a failure.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(Warning|warn|it/s|s/it|%\|)"

# Test cells the student deleted are put back and graded.
c.OverwriteCells.add_missing_cells = True

# A student's outputs and markdown answers are rendered without scripts or event handlers in
# the feedback HTML (nbconvert's sanitizer).
c.HTMLExporter.sanitize_html = True

# The feedback page as nbconvert's HTMLExporter renders it (c.HTMLExporter.* applies), without
# re-parsing the whole page only to add alt/tabindex attributes it would not change.
c.GenerateFeedback.exporter_class = "tarea2_grader.integration.retro_html.FeedbackHTMLExporter"

# Students never need the hidden tests in their feedback.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "tarea2_grader.integration.resumen.FeedbackSummary",  # summary first: points per part, failed tests, notes
    "nbgrader.preprocessors.ClearHiddenTests",
    "tarea2_grader.integration.pauta.RemoveRubricCells",  # the grader's rubric cells stay in formgrader
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# LMS bulk downloads: Moodle-style folders (or plain <student_id>/ folders) and any
# notebook name ("Copia de tarea2.ipynb"); see tarea2_grader/integration/collect.py to adapt
# the pattern, e.g. c.LmsCollectorPlugin.named_regexp = r"...(?P<student_id>...)...".
c.ZipCollectApp.collector_plugin = "tarea2_grader.integration.collect.LmsCollectorPlugin"
# Archives are extracted with size limits (zip bombs, huge files): only notebooks and archives one
# level deep are taken out, and what is refused goes into that student's row in grades.csv.
c.ZipCollectApp.extractor_plugin = "tarea2_grader.integration.collect.SafeExtractorPlugin"

# Size limits (tarea2_grader/engine/tamano.py; 1 MB = 1,000,000 bytes):
c.SizeLimits.file_mb = 200          # each submitted file, uncompressed; also each student's files in all
c.SizeLimits.archive_mb = 4096      # everything extracted from the LMS download(s)
c.SizeLimits.archive_entries = 100000  # an archive with more entries is not opened
# Each student output or markdown attachment kept in the autograded notebook (formgrader, feedback):
# a larger one is replaced by a note ("(salida de 150 MB omitida: supera el límite de 2 MB por salida)";
# a long text keeps its beginning); past the notebook's cap, the later outputs become notes too.
c.SizeLimits.output_mb = 2
c.SizeLimits.notebook_mb = 20
