"""Course content: typed models, the loader, and the linter."""

from sdtutor.content.loader import Course, load_lab, load_lesson, load_quiz
from sdtutor.content.models import LabSpec, Lesson, Question, Quiz

__all__ = [
    "Course",
    "LabSpec",
    "Lesson",
    "Question",
    "Quiz",
    "load_lab",
    "load_lesson",
    "load_quiz",
]
