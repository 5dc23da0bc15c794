"""Grading: a student's own progress, and the instructor's sandboxed course workflow.

``tito module status`` grades a student's own workspace in the student's process
(:mod:`.workspace`). ``tito grade`` runs a course: release, collect, autograde in a sandbox,
review, feedback and export, with an SQLite gradebook (see ``tinytorch/cli/grade.py``).
"""

from .workspace import default_workspace, grade_lesson, workspace_path

__all__ = ["default_workspace", "grade_lesson", "workspace_path"]
