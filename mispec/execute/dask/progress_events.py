"""Workers' progress on the client: a task's training bar and its ``live:`` metrics travel as
Dask events (``Worker.log_event`` on a topic of the run) and the client mirrors them on its
display (:mod:`mispec.runtime.display_forward`), as the local executor would show them.

Events pushed to the client may trail a task's result; when the run's tasks are done the
client reads back every event the scheduler holds for the topic (``Client.get_events``) and
applies those it has not seen, so everything a worker sent shows before the run ends."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from mispec.runtime.display import Display
from mispec.runtime.display_forward import Mirror


@dataclass(frozen=True)
class WorkerEvents:
    """A task's progress messages, sent as Dask events of ``topic`` (the worker side)."""

    topic: str

    def __call__(self, message: dict[str, Any]) -> None:
        from distributed import get_worker

        with contextlib.suppress(ValueError):  # not on a worker: nowhere to send
            get_worker().log_event(self.topic, message)


class ClientMirror:
    """The client side: subscribed to ``events.topic`` from construction to :meth:`close`."""

    def __init__(self, client: Any, events: WorkerEvents, display: Display):
        self.client, self.topic = client, events.topic
        self.mirror: Mirror | None = Mirror(display)
        mirror = self.mirror
        client.subscribe_topic(self.topic, lambda event: mirror.apply(event[1]))

    def close(self) -> None:
        """Apply the events not seen yet, stop listening, remove what is left shown."""
        mirror, self.mirror = self.mirror, None
        if mirror is None:
            return
        with contextlib.suppress(Exception):
            for _, message in self.client.get_events(self.topic):
                mirror.apply(message)
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        mirror.close()
