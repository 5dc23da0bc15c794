"""The course book: the lessons built into one HTML site with Sphinx (``tito book build``).

One page per lesson, in course order, each as the lesson file is (the examples as highlighted
code with their outputs, the exercises, the reflection questions), headed by what the lesson's
field list says: the module it teaches, the exercises, the checkpoint it leads to. The landing
page has the course map, drawn from the framework's imports (:func:`tinytorch.coursemap.draw`),
and the table of lessons and checkpoints; Sphinx adds the search page. The sources are assembled
in ``<out>/source`` from ``lessons/``; the site is ``<out>/html``. Needs the ``docs`` extra
(Sphinx) and the ``plot`` extra (matplotlib, for the map): ``pip install "tinytorch[docs,plot]"``.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

from tinytorch.lesson import Lesson, find_lessons

DEFAULT_OUT = Path("build") / "book"
MAP_IMAGE = "course_map.png"


class BookError(RuntimeError):
    """The book did not build; the message holds Sphinx's warnings or errors."""


def _literal(text: str) -> str:
    return f"``{text}``"


def lesson_page(lesson: Lesson, checkpoint_titles: dict[str, str]) -> str:
    """The lesson's text, its head field list replaced by a line under its title that says the same."""
    checkpoint = checkpoint_titles.get(lesson.checkpoint, "none")
    card = (
        f"\n.. rubric:: Teaches {_literal(lesson.module.replace('.', '/') + '.py')}"
        + (f" · you write {', '.join(_literal(e) for e in lesson.exercises)}" if lesson.exercises else "")
        + f" · leads to checkpoint {checkpoint}\n"
    )
    text = re.sub(r"\A(?::\w+:.*\n)+", "", lesson.text)  # the head is for the runner; the card shows it to readers
    title = re.search(r"^(?P<title>\S.*)\n(?P<rule>[=\-~^#*]{3,})\n", text, re.M)
    if title is None:
        return text
    return text[: title.end()] + card + text[title.end() :]


def index_page(lessons: list[Lesson], checkpoint_titles: dict[str, str], questions: dict[str, str]) -> str:
    rows = []
    for lesson in lessons:
        checkpoint = checkpoint_titles.get(lesson.checkpoint)
        rows.append(
            f"   * - :doc:`{lesson.number} <{lesson.name}>`\n"
            f"     - {lesson.title}\n"
            f"     - {checkpoint + ': ' + questions[lesson.checkpoint] if checkpoint else '-'}\n"
        )
    toctree = "\n".join(f"   {lesson.name}" for lesson in lessons)
    return f"""TinyTorch: the course
=====================

TinyTorch is a small, complete deep-learning framework and a course in one: each lesson teaches one
piece, the student writes it, and a checkpoint tests what they can now do with it (``tito module
complete NN``). The map below is measured, not drawn by hand: it is read from the framework's own
imports (``tito system map``), so each arc is a place where one lesson's code uses an earlier one's.

.. image:: {MAP_IMAGE}
   :alt: The course map: lessons in order, arcs where a lesson's code imports an earlier lesson's,
         and the checkpoint each lesson unlocks.

.. list-table:: Lessons and the checkpoints they lead to
   :header-rows: 1
   :widths: 8 46 46

   * - lesson
     - what it teaches
     - checkpoint it unlocks
{"".join(rows)}
Search the book: :ref:`search`.

.. toctree::
   :maxdepth: 1
   :caption: Lessons

{toctree}
"""


def build(out: str | Path = DEFAULT_OUT, warnings_as_errors: bool = False) -> Path:
    """Build the book into ``out``; return the path of its landing page (``<out>/html/index.html``).

    Raises :class:`BookError` with Sphinx's messages when the build fails (with
    ``warnings_as_errors``, on the first warning), and ImportError naming the extra when Sphinx or
    matplotlib is missing.
    """
    try:
        from sphinx.application import Sphinx
        from sphinx.errors import SphinxError
    except ImportError as error:
        raise ImportError('tito book build needs Sphinx: pip install "tinytorch[docs,plot]"') from error
    from tinytorch.checkpoints import CHECKPOINTS
    from tinytorch.coursemap import draw

    out = Path(out)
    source, html, doctrees = out / "source", out / "html", out / "doctrees"
    if source.exists():
        shutil.rmtree(source)  # assembled afresh: a lesson removed from lessons/ must not linger
    source.mkdir(parents=True)
    lessons = find_lessons()
    titles = {c.number: c.title for c in CHECKPOINTS}
    questions = {c.number: c.question for c in CHECKPOINTS}
    for lesson in lessons:
        (source / f"{lesson.name}.rst").write_text(lesson_page(lesson, titles), encoding="utf-8")
    (source / "index.rst").write_text(index_page(lessons, titles, questions), encoding="utf-8")
    draw(source / MAP_IMAGE)
    from tinytorch import __version__

    messages = io.StringIO()
    settings = {
        "project": "TinyTorch",
        "author": "the TinyTorch course",
        "version": __version__,
        "release": __version__,
        "root_doc": "index",
        "html_theme": "alabaster",
        "html_title": f"TinyTorch {__version__}: the course",
        "highlight_language": "none",  # literal blocks are shell commands and diagrams; the doctests are highlighted as Python sessions
        "html_show_sourcelink": False,
    }
    try:
        app = Sphinx(str(source), None, str(html), str(doctrees), "html", confoverrides=settings,
                     status=messages, warning=messages, freshenv=True, warningiserror=warnings_as_errors)
        app.build()
    except SphinxError as error:
        raise BookError(f"the book did not build: {error}\n{messages.getvalue()}") from error
    if app.statuscode:
        raise BookError(f"the book did not build (status {app.statuscode}):\n{messages.getvalue()}")
    return html / "index.html"
