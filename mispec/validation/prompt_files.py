"""Checks of text prompt files (``prompts.<name>.file``), located at the file's own line.

* ``file_problem``: a problem of a prompt file at its own ``file:line`` (``p.jsonl:3:1``) when
  the error names a line (:class:`mispec.prompts.records.PromptFileError`), else at the
  spec's ``prompts.<name>.file``;
* ``build_text_sets``: each text prompt set tokenized, as a run will, by every model that reads
  it and whose tokenizer is on local disk (``ModelSource.local_tokenizer_folder``): a
  multi-token ``answer``, a ``corrupt_text`` of another length, a position outside its prompt
  are reported at the ``.jsonl`` line before anything runs;
* ``text_extras``: the extras a text set will carry, from its file's fields alone (for
  models whose tokenizer only the run can load).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import Problem, PromptError
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import SourceMap

if TYPE_CHECKING:
    from mispec.sources import ModelSource


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


def file_problem(source: SourceMap, name: str, exc: Exception) -> Problem:
    """A prompt-file problem at the file's own line when it has one (``p.jsonl:3:1``), else
    at the spec's ``prompts.<name>.file``."""
    from mispec.prompts.records import PromptFileError

    if isinstance(exc, PromptFileError) and exc.line is not None:
        return Problem(exc.message, ("prompts", name), file=exc.file, line=exc.line, col=1)
    return source.problem(("prompts", name, "file"), str(exc))


def build_text_sets(
    spec: Spec,
    source: SourceMap,
    sources: dict[str, ModelSource],
    base_dir: Path,
    problems: list[Problem],
) -> dict[str, Any]:
    """Text prompt sets tokenized, as the run will, by every model that reads them and whose
    tokenizer is on local disk (``ModelSource.local_tokenizer_folder``): a multi-token
    ``answer``, a ``corrupt_text`` of another length or a position outside its prompt is
    reported at the ``.jsonl`` line. A tokenizer folder that does not load is left to the run
    (which reports it when it opens the model). Returns the first such build of each set."""
    from mispec.errors import CheckpointError
    from mispec.prompts.text import load_text_prompts

    built: dict[str, Any] = {}
    failed: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for m in spec.metrics.values():
        prompt = spec.prompts.get(m.prompts or "")
        if prompt is None or prompt.file is None or m.prompts in failed:
            continue
        assert m.prompts is not None
        for model_name in m.models or list(spec.models):
            if (m.prompts, model_name) in seen or model_name not in sources:
                continue
            seen.add((m.prompts, model_name))
            folder = sources[model_name].local_tokenizer_folder()
            if folder is None:
                continue
            from mispec.models import hf  # only now: specs without text sets import no torch

            try:
                tokenizer = hf.local_tokenizer(folder)
            except CheckpointError:  # a tokenizer that does not load: the run reports it
                continue
            info = sources[model_name].validation_info()
            try:
                prompts = load_text_prompts(
                    _resolve(prompt.file, base_dir),
                    tokenizer,
                    prepend_bos=prompt.prepend_bos,
                    max_tokens=prompt.max_tokens,
                    limit=prompt.limit,
                    model=model_name,
                    n_ctx=info.n_ctx if info is not None else None,
                )
            except (PromptError, OSError, UnicodeDecodeError) as exc:
                problems.append(file_problem(source, m.prompts, exc))
                failed.add(m.prompts)
                break
            built.setdefault(m.prompts, prompts)
    return {k: v for k, v in built.items() if k not in failed}


def text_extras_of(spec: Spec, name: str, base_dir: Path) -> set[str]:
    """The extras a text prompt set will carry, from its file's fields (no tokenizer)."""
    from mispec.prompts.records import read_records
    from mispec.prompts.text import TEXT_EXTRAS, text_extras

    file = spec.prompts[name].file
    try:
        return set(text_extras(read_records(_resolve(file or "", base_dir))))
    except (PromptError, OSError, UnicodeDecodeError):  # reported by check_resources
        return set(TEXT_EXTRAS)
