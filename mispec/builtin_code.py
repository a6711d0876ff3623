"""The built-ins' code, recorded beside their versions: a built-in's keys hold its version,
never its code, so changing what one computes without bumping its version would serve old
results from every store. ``mispec/data/builtin_code.json`` maps each built-in metric, task,
prompt generator and model source to its version and a hash of its own source (the function,
or the task's factory and class, or the source class; normalised as in
:mod:`mispec.code_identity`, so comments, docstrings and formatting do not count, and not
its file's path, so moving it to another module does not either).

``tests/system/test_trust_plugin_code.py`` fails while the record and the code disagree. To record:

    python -m mispec.builtin_code            # refuses a changed hash under an unchanged version
    python -m mispec.builtin_code --same-results metric:loss   # a refactor, results unchanged
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mispec.code_identity import is_builtin, object_source, pinned_version
from mispec.hashing import content_key

RECORD = Path(__file__).parent / "data" / "builtin_code.json"
RECORD_COMMAND = "python -m mispec.builtin_code"


def current() -> dict[str, dict[str, Any]]:
    """``kind:name`` → ``{"version": N, "hash": <of its own source>}`` for every built-in."""
    from mispec.metrics.core import METRICS, MetricDef, load_builtin_metrics
    from mispec.prompts.generators import GENERATORS
    from mispec.sources import SOURCES
    from mispec.tasks import TASKS
    from mispec.tasks.base import Task
    from mispec.tasks.generators import task_class

    load_builtin_metrics()
    out: dict[str, dict[str, Any]] = {}

    def add(key: str, version: int, *objs: Any) -> None:
        out[key] = {"version": version, "hash": content_key([object_source(o) for o in objs])}

    for name, item in METRICS._items.items():
        mdef = getattr(item, "__mispec__", item)  # a ``module:fn`` plugin holds its function
        if isinstance(mdef, MetricDef) and is_builtin(mdef.fn) and name == mdef.name:
            add(f"metric:{name}", mdef.version, mdef.fn)
    for name, factory in TASKS._items.items():
        if not is_builtin(factory):
            continue
        cls = task_class(factory)
        objs = (factory,) if cls is factory or cls is Task else (factory, cls)
        # a built-in task states its version as ``data_version`` (mispec.tasks.base.Task)
        add(f"task:{name}", max(_version(*objs), cls.data_version), *objs)
    for name, fn in GENERATORS._items.items():
        if is_builtin(fn):
            add(f"generator:{name}", _version(fn), fn)
    for name, source in SOURCES._items.items():
        if is_builtin(source):
            add(f"source:{name}", _version(source), source)
    return dict(sorted(out.items()))


def _version(*objs: Any) -> int:
    versions = [v for v in map(pinned_version, objs) if v is not None]
    return versions[0] if versions else 1


def recorded() -> dict[str, dict[str, Any]]:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def problems(
    now: dict[str, dict[str, Any]], then: dict[str, dict[str, Any]], same: tuple[str, ...] = ()
) -> list[str]:
    """Each built-in whose code changed while its version did not (but those in ``same``,
    said to compute the same results), or whose version went down."""
    out = [
        f"{key.replace(':', ' ', 1)}: not recorded yet: run `{RECORD_COMMAND}`"
        for key in now
        if key not in then
    ]
    out += [
        f"{key.replace(':', ' ', 1)}: recorded but no longer built in: run `{RECORD_COMMAND}`"
        for key in then
        if key not in now
    ]
    for key, entry in now.items():
        old = then.get(key)
        if old is None or key in same:
            continue
        kind, name = key.split(":", 1)
        if entry["version"] < old["version"]:
            out.append(f"{kind} '{name}': version {entry['version']} < recorded {old['version']}")
        elif entry["hash"] != old["hash"] and entry["version"] == old["version"]:
            out.append(
                f"{kind} '{name}': its code changed but its version is still {entry['version']}: "
                f"bump it ({_how(kind)}) so that cached results are recomputed, then run "
                f"`{RECORD_COMMAND}` (or, for a change that cannot alter results, "
                f"`{RECORD_COMMAND} --same-results {key}`)"
            )
    return out


def _how(kind: str) -> str:
    return "version=N in its @metric(...)" if kind == "metric" else "a `version = N` attribute"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=RECORD_COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--same-results", nargs="*", default=[], metavar="KIND:NAME")
    args = parser.parse_args(argv)
    now = current()
    found = [
        p
        for p in problems(now, recorded(), tuple(args.same_results))
        if not p.endswith(f"run `{RECORD_COMMAND}`")  # what recording is for
    ]
    if found:
        print("refusing to record:\n  " + "\n  ".join(found), file=sys.stderr)
        return 2
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(now)} built-ins in {RECORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
