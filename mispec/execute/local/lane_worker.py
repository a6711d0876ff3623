"""A lane worker process: ``python -m mispec.execute.local.lane_worker`` reads one job as JSON on
stdin (see :class:`mispec.execute.local.lanes.LanePool`), rebuilds the run's plan from the spec
(refusing to go on if its key differs from the caller's), runs the lane's work nodes in
order into the shared store under pinned torch threads, and prints its record as one JSON
line: ``{"counters": {...}, "done": [node ids]}``, plus ``"failed"`` (a failure record of
:mod:`mispec.execute.remote`) when a node failed."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mispec.execute.local.worker_processes import PARENT_ENV
from mispec.runtime.exit import end_without_gc_walk


def run_lane(job: dict[str, Any]) -> dict[str, Any]:
    from mispec.errors import ExecutorError, MispecError
    from mispec.execute.context import RunContext
    from mispec.execute.profile import RunSettings
    from mispec.execute.remote import failure
    from mispec.execute.work.batched import prefetch
    from mispec.execute.work.run_node import run_work_node
    from mispec.plugin_import import beside
    from mispec.runtime.memory import tune_malloc
    from mispec.runtime.threads import pinned_torch_threads
    from mispec.store.store import Store
    from mispec.store.write_errors import WRITE_ERRNOS, write_error

    base_dir = Path(job["base_dir"])
    done: list[str] = []
    current = job["nodes"][0]
    ctx = None
    tune_malloc()
    try:
        # plugins named `module:name` are found beside the spec, as when it was validated
        with beside(base_dir), pinned_torch_threads(job["threads"]):
            plan = _plan(job, base_dir)
            if plan.key != job["plan_key"]:
                raise ExecutorError(
                    f"a worker process rebuilt a different plan ({plan.key}, not "
                    f"{job['plan_key']}): a plugin or a file the spec reads changed during "
                    "the run; run it again"
                )
            ctx = RunContext(
                plan,
                base_dir,
                Store(Path(job["store"])),
                device=job["device"],
                batch_size=job["batch_size"],
            )
            settings = RunSettings.model_validate(job["settings"])
            nodes = [plan.node(node_id) for node_id in job["nodes"]]
            for i, node in enumerate(nodes):
                current = node.id
                prefetch(ctx, nodes[i:], settings)  # type: ignore[arg-type]
                run_work_node(ctx, node)  # type: ignore[arg-type]
                done.append(node.id)
    except MispecError as exc:
        record = failure(current, exc)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        record = failure(current, write_error(exc, Path(job["store"]), None))
    else:
        record = {}
    finally:
        if ctx is not None:
            ctx.close()
    counters = asdict(ctx.counters) if ctx is not None else {}
    return {**record, "counters": counters, "done": done}


def _plan(job: dict[str, Any], base_dir: Path) -> Any:
    """The caller's plan, rebuilt from the validated spec and every series' steps."""
    import mispec.sources  # noqa: F401 (its sources register the model entries Spec reads)
    from mispec.planning.graph import build_plan
    from mispec.planning.resolve import resolve
    from mispec.spec.load import LoadedSpec
    from mispec.spec.schema import Spec
    from mispec.spec.yaml_source import SourceMap

    spec = Spec.model_validate(job["spec"], strict=False)
    path = base_dir / "spec.yaml"  # only its folder is used: relative paths resolve there
    loaded = LoadedSpec(spec, path, SourceMap(root_file=str(path)), "")
    steps = {(m, int(s)): [int(x) for x in xs] for m, s, xs in job["steps"]}
    return build_plan(spec, resolve(loaded, steps), base_dir)


def main() -> None:
    die_with_parent()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        record = run_lane(json.loads(sys.stdin.read()))
    except KeyboardInterrupt:  # told to stop (the run was interrupted): what is written is whole
        sys.exit(128 + signal.SIGINT)
    sys.stdout.write(json.dumps(record) + "\n")
    end_without_gc_walk()  # the record is told: the run goes on as soon as this process ends


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def die_with_parent() -> None:
    """Be killed when the run that started this worker dies, however it dies (SIGKILL
    included): no orphan goes on writing into the store. Linux: ``PR_SET_PDEATHSIG``;
    elsewhere a thread that watches the parent's pid."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if not parent:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the line above: go now
        os._exit(128 + signal.SIGKILL)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(128 + signal.SIGKILL)


PR_SET_PDEATHSIG = 1


if __name__ == "__main__":
    main()
