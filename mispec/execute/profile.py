"""Execution profiles: where and how to run, validated like specs.

A profile is named (``--executor dask-local``) or given by path. A name is looked up in the
working directory's ``executors/<name>.yaml`` first (a project's own profiles, or its
edits of a built-in one), then among the built-ins shipped inside the package
(``mispec/profiles/<name>.yaml``: ``local``, the default, and ``dask-local``,
``dask-remote``, ``dask-slurm``).

A profile is ``kind`` (which executor: ``local``, ``dask-local``, ``dask-remote``,
``dask-slurm``, or a plugin's) plus the keys every run has (device, micro-batch, store,
torch threads) plus that executor's own options (its ``Executor.Options``), all at the top
level of one YAML file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

from mispec.errors import ExecutorError, SpecError
from mispec.execute.executor import ExecutorOptions, executor_class


class RunSettings(BaseModel):
    """The keys of every profile, whatever its executor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "local"
    kind: str = "local"
    device: str = "auto"  # auto: CUDA when present
    batch_size: Annotated[int, Field(gt=0)] | None = 64  # prompts per forward micro-batch
    store: str | None = None  # store folder; default .mispec beside the spec
    # torch intra-op threads per process; null: torch's default. The same count in every
    # executor keeps results bit-identical (see mispec/runtime/threads.py).
    torch_threads: Annotated[int, Field(gt=0)] | None = 1
    # checkpoints of one model evaluated in ONE forward call (torch.vmap over their stacked
    # weights, mispec/execute/work/batched.py): an int is at most that many (1: one at a time);
    # auto: 1 on CPU (not faster there, see docs/speed.md), on CUDA as many as batch_memory holds
    batch_checkpoints: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = "auto"
    # MiB one batched call may hold (stacked weights, activations, its outputs); auto: 1024 on
    # CPU, a quarter of the device's free memory on CUDA
    batch_memory: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"
    # training runs of one architecture (a `train:` model's seeds, a sweep's points) trained
    # together in one set of batched kernels, each with its own optimizer settings (1: one at a
    # time; auto: all of them when they train on CUDA, one at a time on CPU, where batching
    # measured slower). See mispec/execute/local/train_together.py.
    batch_seeds: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"


class Profile(RunSettings):
    """A loaded profile: the run settings plus the executor's own ``options``."""

    options: SerializeAsAny[ExecutorOptions] = ExecutorOptions()


PROJECT_PROFILES = Path("executors")  # relative: the working directory's
BUILTIN_PROFILES = resources.files("mispec") / "profiles"


def load_profile(name_or_path: str | None) -> Profile:
    """A profile by name (``executors/<name>.yaml`` in the cwd, else the built-in one; none:
    ``local``) or by path."""
    name = name_or_path or "local"
    path = Path(name)
    if path.suffix:
        if not path.is_file():
            raise _unknown(name, path)
        return _read(path)
    path = PROJECT_PROFILES / f"{name}.yaml"
    if path.is_file():
        return _read(path)
    builtin = BUILTIN_PROFILES / f"{name}.yaml"
    if not builtin.is_file():
        raise _unknown(name, path)
    with resources.as_file(builtin) as builtin_path:
        return _read(builtin_path)


def _unknown(name: str, path: Path) -> ExecutorError:
    from mispec.registry import did_you_mean

    known = {p.stem for p in PROJECT_PROFILES.glob("*.yaml")} | {
        Path(p.name).stem for p in BUILTIN_PROFILES.iterdir() if p.name.endswith(".yaml")
    }
    return ExecutorError(
        f"unknown execution profile '{name}' (no {path}){did_you_mean(name, sorted(known))}"
    )


def _read(path: Path) -> Profile:
    from mispec.spec.load import problems_from
    from mispec.spec.yaml_source import read_yaml_file

    data, source = read_yaml_file(path)
    data = data or {}
    if not isinstance(data, dict):
        raise SpecError(source.problem((), "an execution profile is a mapping of keys"))
    kind = data.get("kind", "local")
    try:
        options_cls = executor_class(str(kind)).Options
    except ExecutorError as exc:
        raise SpecError(source.problem(("kind",), str(exc))) from None
    # one model of every key, so errors and did-you-mean see them all
    combined: Any = type(f"{options_cls.__name__}Profile", (options_cls, RunSettings), {})
    try:
        combined.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, data, source, combined)) from None
    own = set(RunSettings.model_fields)
    return Profile(
        **{k: v for k, v in data.items() if k in own},
        options=options_cls.model_validate({k: v for k, v in data.items() if k not in own}),
    )
