"""Paths of an nbgrader course folder: the one object every instructor command passes around.

No nbgrader, no torch: importing this module is free, so a command that only needs the course's
paths does not pull in the grading pipeline.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import List

ASSIGNMENT = "tarea2"
NOTEBOOK = "tarea2"


@dataclass
class Course:
    """Paths of an nbgrader course folder (the repository root by default)."""

    root: str
    assignment: str = ASSIGNMENT
    notebook: str = NOTEBOOK

    @property
    def assignment_arg(self) -> str:
        """The assignment as an option: a positional id clashes with a config that sets it."""
        return "--CourseDirectory.assignment_id=" + self.assignment

    def path(self, *parts: str) -> str:
        """A path inside the course."""
        return os.path.join(self.root, *parts)

    @property
    def source_nb(self) -> str:
        """The master notebook (with solutions and hidden tests)."""
        return self.path("source", self.assignment, self.notebook + ".ipynb")

    @property
    def archive_dir(self) -> str:
        """Where the LMS zips go (nbgrader zip_collect's default)."""
        return self.path("downloaded", self.assignment, "archive")

    @property
    def extracted_dir(self) -> str:
        """Where zip_collect extracts the zips."""
        return self.path("downloaded", self.assignment, "extracted")

    @property
    def logs_dir(self) -> str:
        """Where each student's autograde log is kept."""
        return self.path("downloaded", self.assignment, "logs")

    def submitted_dir(self, student: str) -> str:
        """A student's submitted assignment folder."""
        return self.path("submitted", student, self.assignment)

    def submitted_nb(self, student: str) -> str:
        """A student's submitted notebook."""
        return os.path.join(self.submitted_dir(student), self.notebook + ".ipynb")

    def autograded_nb(self, student: str) -> str:
        """A student's autograded notebook."""
        return self.path("autograded", student, self.assignment, self.notebook + ".ipynb")

    def feedback_dir(self, student: str) -> str:
        """Where ``nbgrader generate_feedback`` writes a student's pages."""
        return self.path("feedback", student, self.assignment)

    def feedback_page(self, student: str) -> str:
        """A student's feedback page."""
        return os.path.join(self.feedback_dir(student), self.notebook + ".html")

    def students(self) -> List[str]:
        """Students with a submitted folder for the assignment."""
        found = glob.glob(os.path.join(glob.escape(self.path("submitted")), "*", self.assignment))
        return sorted(os.path.basename(os.path.dirname(p)) for p in found if os.path.isdir(p))
