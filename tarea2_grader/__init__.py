"""Grading code for Tarea 2 "Back to training": hidden tests, checks and the instructor pipeline."""
