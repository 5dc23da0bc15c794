"""tito book build: the lessons as an HTML book, built by Sphinx with every warning an error."""

import re

import pytest

from tinytorch import lesson as runner


def test_the_book_builds_with_a_page_per_lesson_and_a_landing_page_with_the_map(tmp_path, capsys, monkeypatch):
    pytest.importorskip("sphinx", reason="the book needs the docs extra (Sphinx)")
    pytest.importorskip("matplotlib", reason="the book's course map needs the plot extra (matplotlib)")
    from tinytorch.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    code = main(["book", "build", f"--out={tmp_path}", "--strict"])  # --strict: Sphinx's warnings are errors
    out = capsys.readouterr().out
    assert code == 0, out
    html = tmp_path / "html"
    assert f"open {html / 'index.html'}" in out
    index = (html / "index.html").read_text()
    assert 'src="_images/course_map.png"' in index
    assert (html / "_images" / "course_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (html / "search.html").is_file() and (html / "searchindex.js").is_file()
    lessons = runner.find_lessons()
    links = re.findall(r'href="(\d\d_\w+)\.html"', index)
    assert list(dict.fromkeys(links)) == [lesson.name for lesson in lessons]  # every lesson, in course order
    for lesson in lessons:
        page = (html / f"{lesson.name}.html").read_text()
        assert f"<title>{lesson.title.split(':')[0]}" in page, lesson.name
        if lesson.exercises:
            assert "Exercise:" in page and "Reflection" in page, lesson.name
        if lesson.checkpoint.isdigit():
            assert f"leads to checkpoint {lesson.checkpoint}" in page, lesson.name
    spatial = (html / "06_spatial.html").read_text()
    assert '<span class="gp">&gt;&gt;&gt; </span>' in spatial  # the examples as highlighted Python sessions
    assert "05 Learning: Can I process spatial data" in index  # the lesson -> checkpoint table


def test_a_broken_lesson_fails_the_strict_build_with_sphinx_s_message(tmp_path, monkeypatch):
    pytest.importorskip("sphinx", reason="the book needs the docs extra (Sphinx)")
    pytest.importorskip("matplotlib", reason="the book's course map needs the plot extra (matplotlib)")
    from tinytorch.book import BookError, build

    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "42_broken.rst").write_text(":lesson: 42\n:title: Broken\n:module: tinytorch/core/layers.py\n"
                                          ":exercises:\n:checkpoint: --\n\nBroken\n======\n\nSee `nowhere`_.\n")
    monkeypatch.setenv("TINYTORCH_LESSONS", str(folder))
    with pytest.raises(BookError, match="Unknown target name"):
        build(tmp_path / "book", warnings_as_errors=True)
