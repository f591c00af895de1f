"""`sdtutor learn TOPIC` and `sdtutor next`."""

import typer

from sdtutor.topics import Topic


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("learn")(learn)
    app.command("next")(next_step)


def learn(
    topic: str = typer.Argument(
        ..., help="Number, slug or unambiguous prefix (7, indexing, index)."
    ),
) -> None:
    """Read a topic's lesson one section at a time, then take its quiz and its lab."""
    from sdtutor.topics import resolve

    run_learn(resolve(topic))


def run_learn(topic: Topic) -> None:
    """The lesson, then the offer of the quiz, then of the lab."""

    from sdtutor.cli import render
    from sdtutor.cli.ui import console, interactive
    from sdtutor.content.course import Course
    from sdtutor.progress.store import ProgressStore

    course = Course()
    lesson = course.lesson(topic)
    if not interactive():
        console.print(render.lesson_header(lesson))
        for i in range(len(lesson.sections)):
            console.print(render.section(lesson, i))
        with ProgressStore() as store:
            store.record_lesson(topic.slug, len(lesson.sections), finished=True)
        return

    index, seen = 0, 0
    console.clear()
    console.print(render.lesson_header(lesson))
    finished = False
    while True:
        console.print(render.section(lesson, index))
        seen = max(seen, index + 1)
        last = index == len(lesson.sections) - 1
        console.print(
            "\n[dim]"
            + ("\\[Enter] finish" if last else "\\[Enter] next section")
            + ("  \\[b] back" if index else "")
            + "  \\[q] quit[/]"
        )
        key = _key()
        if key in ("q", "\x1b", "\x03"):
            break
        if key == "b" and index:
            index -= 1
        elif last:
            finished = True
            break
        else:
            index += 1
        console.clear()
    with ProgressStore() as store:
        store.record_lesson(topic.slug, seen, finished)
    if not finished:
        console.print(f"Saved where you are: {seen} of {len(lesson.sections)} sections read.")
        return
    console.print(f"[green]Lesson read.[/] {lesson.title}")
    content = course.content(topic)
    if content.quiz_path and typer.confirm("Take the quiz now?", default=True):
        from sdtutor.cli.quiz import run_quiz

        run_quiz(topic)
    if content.lab_path and typer.confirm("Start the lab now?", default=True):
        from sdtutor.cli.lab import do_start

        do_start(topic, None, None)


def _key() -> str:

    try:
        key = typer.getchar()
    except (EOFError, KeyboardInterrupt):
        return "q"
    return key.lower() if len(key) == 1 else key


def next_step() -> None:
    """Start the next step: due reviews first, then the next unfinished lesson, quiz or lab."""
    from sdtutor.cli.ui import console, interactive
    from sdtutor.progress.store import ProgressStore
    from sdtutor.review import outlook
    from sdtutor.status import course_status

    with ProgressStore() as store:
        rows = course_status(store=store)
        due = len(outlook(store).due)
    if due:
        console.print(f"Next: {due} question(s) due for review.")
        if not interactive():
            console.print("Run: sdtutor review")
            return
        from sdtutor.cli.quiz import review

        review(as_json=False, limit=20)
        return
    for row in rows:
        step = row.next_step
        if step is None:
            continue
        console.print(f"Next: the {step} of {row.topic.number}. {row.topic.title}")
        if not interactive():
            command = {"lesson": "learn", "quiz": "quiz", "lab": "lab start"}[step]
            console.print(f"Run: sdtutor {command} {row.topic.slug}")
            return
        if step == "lesson":
            run_learn(row.topic)
        elif step == "quiz":
            from sdtutor.cli.quiz import run_quiz

            run_quiz(row.topic)
        else:
            from sdtutor.cli.lab import do_start

            do_start(row.topic, None, None)
        return
    console.print("[green]Everything written so far is done.[/] Well played.")
