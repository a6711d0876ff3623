"""One exception tree for mispec. Every user-facing failure is a ``MispecError``.

The CLI maps ``UserError`` subclasses to exit code 2 and anything else to 1; messages say
what went wrong *and* what to do next, and never need a traceback to be understood.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One located problem in a spec: ``file:line:col: key.path: message``."""

    message: str
    path: tuple[str | int, ...] = ()
    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based

    @property
    def key_path(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def __str__(self) -> str:
        if self.file is None and self.line is None and not self.path:
            return self.message  # a message that names its file itself
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}:{self.col or 1}"
        key = f" {self.key_path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class MispecError(Exception):
    """Base of every error mispec raises on purpose."""

    exit_code = 1


class UserError(MispecError):
    """Bad input: the user can fix it. Exit code 2."""

    exit_code = 2


class SpecError(UserError):
    """A spec failed to parse or validate; carries every problem found, with locations."""

    def __init__(self, problems: list[Problem] | Problem | str, note: str = ""):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        self.note = note  # what could not be checked yet, and why (no problem of its own)
        n = len(self.problems)
        head = "" if n == 1 else f"{n} problems in spec:\n"
        tail = f"\n{note}" if note else ""
        super().__init__(head + "\n".join(str(p) for p in self.problems) + tail)


class PlanError(UserError):
    """The spec is well-formed but cannot be planned (cycles, impossible checkpoints...)."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or does not match its model."""


class TrainingDivergedError(UserError):
    """Training a ``train:`` model produced a NaN or an infinity (loss, gradient, weights or
    optimizer state). Nothing non-finite is saved; the message names the model, the seed,
    the step and which settings to change."""

    model: str | None = None  # also None on a copy rebuilt from a worker's failure record
    seed: int | None = None
    step: int | None = None

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        seed: int | None = None,
        step: int | None = None,
    ):
        self.model, self.seed, self.step = model, seed, step
        super().__init__(message)


class PromptError(UserError):
    """A prompt set cannot be built (missing file, tokens outside the vocabulary...)."""


class ExecutorError(UserError):
    """An execution profile is invalid or its backend is unavailable."""


class ResultsError(UserError):
    """A run folder or results store is missing or not a mispec run."""


class DiffError(UserError):
    """Two things cannot be diffed (no results, unknown git revision, different studies)."""


class CacheError(MispecError):
    """The store is inconsistent or cannot be written (read-only, disk full...)."""


class WorkerKilledError(MispecError):
    """A worker process died of a signal (SIGKILL from the out-of-memory killer or a user,
    SIGSEGV ...): the machine failed, not the input. Exit code 1; what it finished is kept."""


class MetricError(MispecError):
    """A metric function raised or returned something that does not match its declaration."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(f"{node}: {message}" if node else message)


class MissingDependencyError(UserError):
    """An optional extra (plot, dask) is not installed."""

    def __init__(self, what: str, extra: str, package: str):
        super().__init__(
            f"{what} needs the optional '{extra}' extra: pip install 'mispec[{extra}]' "
            f"(or `{package}`); `make venv` installs it."
        )
