"""Progress where there is no terminal: plain lines every N seconds (an injected clock, no
sleeping), the interval's sources, and a worker's progress forwarded to the client's display
(throttled, each message applied once)."""

from __future__ import annotations

import io

import pytest

from mispec.errors import UserError
from mispec.execute.progress import WorkProgress
from mispec.planning.nodes import GroupNode, ReductionNode, TrainNode
from mispec.runtime.display import EVERY_ENV, progress_every
from mispec.runtime.display_forward import ForwardingDisplay, Mirror
from mispec.runtime.display_log import LogDisplay, clock_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def log_display(every: float) -> tuple[LogDisplay, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return LogDisplay(every=every, stream=stream, clock=clock), stream, clock


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_line_every_interval_with_counts_rate_and_time_left():
    display, stream, clock = log_display(30)
    task = display.add("train toy seed 0", 1000, status="loss -", kind="training")
    clock.now += 10
    display.update(task, completed=100, status="loss 2.5000")
    assert lines(stream) == []  # the first line comes 30 s in
    clock.now += 20  # 30 s in: 250 of 1000 done in 30 s -> 8.33/s, 750 left -> 90 s
    display.update(task, completed=250, status="loss 2.1000 icl=0.41")
    assert lines(stream) == [
        "[mispec 0:00:30] train toy seed 0 250/1000 8.33/s ETA 0:01:30 (loss 2.1000 icl=0.41)"
    ]
    clock.now += 29
    display.update(task, completed=260)
    display.tick()
    assert len(lines(stream)) == 1  # 29 s later: nothing yet
    clock.now += 1
    display.tick()  # the ticker writes a line though nothing changed
    assert lines(stream)[-1].startswith("[mispec 0:01:00] train toy seed 0 260/1000 4.33/s")
    display.remove(task)
    work = display.add("checkpoints", 4)
    display.update(work, advance=4, status="done")
    display.close()  # the last line, whenever the one before was
    assert lines(stream)[-1] == "[mispec 0:01:00] checkpoints 4/4 (done)"
    assert len(lines(stream)) == 3


def test_every_zero_writes_a_line_at_every_change_and_notes_at_once():
    display, stream, clock = log_display(0)
    a = display.add("training", 2)
    b = display.add("checkpoints", 3)
    display.update(b, advance=1, status="toy seed 0 step 0")
    display.note("failed cell:x: boom (other tasks continue; finished cells are kept)")
    assert lines(stream) == [
        "[mispec 0:00:00] training 0/2",
        "[mispec 0:00:00] training 0/2 | checkpoints 0/3",
        "[mispec 0:00:00] training 0/2 | checkpoints 1/3 ETA after training (toy seed 0 step 0)",
        "failed cell:x: boom (other tasks continue; finished cells are kept)",
    ]
    display.update(a, completed=2)
    assert (
        lines(stream)[-1] == "[mispec 0:00:00] training 2/2 | checkpoints 1/3 (toy seed 0 step 0)"
    )


def train(seed: int) -> TrainNode:
    return TrainNode(f"train/{seed}", "k", model="toy", seed=seed)


def group(step: int) -> GroupNode:
    return GroupNode(f"group/{step}", "k", model="toy", seed=0, step=step, dtype="float32")


def test_a_refine_round_starts_the_same_bars_again_and_drops_the_empty_ones():
    display, stream, clock = log_display(0)
    first = [
        train(0),
        group(0),
        group(20),
        ReductionNode("r", "k", model="toy", seed=0, metric="m"),
    ]
    progress = WorkProgress(display, first, where="local", enabled=True)
    for node in first:
        progress.finished(node)
    progress.done()
    assert lines(stream)[-1].endswith(
        "training 1/1 (done) | checkpoints 2/2 (done) | reductions 1/1 (done)"
    )
    clock.now += 5
    second = [group(0), group(10), group(20)]
    progress = WorkProgress(display, second, where="local", enabled=True)
    assert lines(stream)[-1] == "[mispec 0:00:05] checkpoints 0/3"  # one block, reset
    progress.finished(second[0])
    display.close()
    assert lines(stream)[-1] == "[mispec 0:00:05] checkpoints 1/3 (toy seed 0 step 0)"


@pytest.mark.parametrize(
    ("given", "env", "expected"),
    [(None, None, 30.0), (None, "7.5", 7.5), (2.0, "7.5", 2.0), (None, " ", 30.0), (0, None, 0.0)],
)
def test_the_interval_comes_from_the_option_then_the_environment(monkeypatch, given, env, expected):
    if env is None:
        monkeypatch.delenv(EVERY_ENV, raising=False)
    else:
        monkeypatch.setenv(EVERY_ENV, env)
    assert progress_every(given) == expected


def test_a_bad_interval_names_where_it_came_from(monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "soon")
    with pytest.raises(UserError, match=r"\$MISPEC_PROGRESS_EVERY='soon' is not a number"):
        progress_every(None)
    with pytest.raises(UserError, match=r"--progress-every: -1.0 is not a number of seconds >= 0"):
        progress_every(-1.0)


def test_clock_text():
    assert [clock_text(s) for s in (0, 59.4, 61, 3725)] == [
        "0:00:00",
        "0:00:59",
        "0:01:01",
        "1:02:05",
    ]


def test_a_workers_progress_is_throttled_forwarded_and_applied_once():
    sent: list[dict] = []
    clock = Clock()
    worker = ForwardingDisplay(sent.append, gap=0.5, clock=clock)
    task = worker.add("train toy seed 0", 40, status="loss -", kind="training")
    worker.update(task, completed=10, status="loss 2.9")  # within the gap: held back
    clock.now += 0.1
    worker.update(task, completed=20, status="loss 2.8 icl=0.5", flush=True)  # a live value
    clock.now += 0.1
    worker.update(task, completed=30, status="loss 2.75 icl=0.5")  # held back
    worker.update(task, completed=40, status="loss 2.74 icl=0.3", flush=True)  # finished
    worker.remove(task)
    assert [(m["op"], m.get("completed"), m.get("status")) for m in sent] == [
        ("add", None, "loss -"),
        ("update", 20, "loss 2.8 icl=0.5"),
        ("update", 40, "loss 2.74 icl=0.3"),
        ("remove", None, None),
    ]
    client, stream, _ = log_display(0)
    work = client.add("training", 1)
    mirror = Mirror(client)
    for message in sent[:3] + sent[:3]:  # pushed, then read back: applied once
        mirror.apply(message)
    assert lines(stream) == [
        "[mispec 0:00:00] training 0/1",
        "[mispec 0:00:00] training 0/1 | train toy seed 0 0/40 (loss -)",
        "[mispec 0:00:00] training 0/1 | train toy seed 0 20/40 (loss 2.8 icl=0.5)",
        "[mispec 0:00:00] training 0/1 | train toy seed 0 40/40 (loss 2.74 icl=0.3)",
    ]
    mirror.close()  # the remove never came (a worker that died): the mirror removes it
    client.update(work, completed=1)
    assert lines(stream)[-1] == "[mispec 0:00:00] training 1/1"
    mirror.apply(sent[3])  # a late remove of a task gone: nothing happens
    assert len(lines(stream)) == 5


def test_work_waiting_on_training_tells_no_time_left_until_training_is_over():
    """Checkpoints evaluated as training saves them go at training's pace: 3 of 40 in an
    hour of training would extrapolate to 12 hours. While training is under way their line
    says ``ETA after training``; once it is over, their rate counts from that moment."""
    display, stream, clock = log_display(0)
    runs = display.add("training", 2)
    work = display.add("checkpoints", 40)
    train = display.add("train toy seed 0", 1000, kind="training")
    clock.now += 3600
    display.update(train, completed=900)
    display.update(work, completed=3, status="toy seed 0 step 12")
    assert lines(stream)[-1] == (
        "[mispec 1:00:00] training 0/2 | checkpoints 3/40 ETA after training "
        "(toy seed 0 step 12) | train toy seed 0 900/1000 0.25/s ETA 0:06:40"
    )
    display.remove(train)  # the loop ended, but the run's second training run is still to come
    display.update(runs, advance=1)
    assert "checkpoints 3/40 ETA after training" in lines(stream)[-1]
    display.update(runs, advance=1)  # training over: the rate starts here
    assert (
        lines(stream)[-1] == "[mispec 1:00:00] training 2/2 | checkpoints 3/40 (toy seed 0 step 12)"
    )
    clock.now += 10
    display.update(work, completed=8)  # 5 in 10 s -> 0.5/s, 32 left -> 64 s
    assert lines(stream)[-1] == (
        "[mispec 1:00:10] training 2/2 | checkpoints 8/40 0.5/s ETA 0:01:04 (toy seed 0 step 12)"
    )
