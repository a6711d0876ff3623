"""Load a spec and check it whole: the schema (``mispec.spec.load``), then every name,
reference, file and size it names (``checks``), each problem at its file:line:col.

Loading imports ``mispec.sources`` (its sources register their entry classes, the members of
the schema's ``models:`` union) and the checks on first use, not at import: ``import
mispec.api`` stays light for the CLI's start-up."""

from __future__ import annotations

from pathlib import Path

from mispec.errors import Problem, SpecError
from mispec.spec.load import LoadedSpec, read_spec
from mispec.spec.partial import blocks_entry, read_spec_partial, read_spec_text_partial
from mispec.spec.schema import Spec


def load_spec(path: str | Path, *, check: bool = True) -> LoadedSpec:
    """Parse, merge ``include:``s, validate structure, then cross-check names and references:
    every problem in one ``SpecError`` (the schema's and, on the part of the spec the schema
    leaves sound, the cross-checks': ``mispec.spec.partial``)."""
    _register_sources()
    if not check:
        return read_spec(path)
    loaded, problems, set_aside = read_spec_partial(path)
    waiting: list[str] = []
    if loaded is not None:
        from mispec.spec.sweep import relocate
        from mispec.validation.checks import check_spec_all

        found, waiting = check_spec_all(
            loaded.spec,
            loaded.source,
            Path(path).parent,
            set_aside,
            [p for p in problems if blocks_entry(p)],
        )
        problems = problems + relocate(found, loaded.spec.models, loaded.source)
    if problems or loaded is None:
        raise SpecError(_in_order(problems), note=_waiting_note(waiting, loaded is None))
    return loaded


def load_spec_text(text: str, file: str = "<spec>", base_dir: Path | None = None) -> Spec:
    """Validate spec text (no includes); used for specs read from git history."""
    from mispec.spec.sweep import relocate
    from mispec.validation.checks import check_spec_all

    _register_sources()
    spec, source, problems, set_aside = read_spec_text_partial(text, file)
    waiting: list[str] = []
    if spec is not None:
        found, waiting = check_spec_all(
            spec,
            source,
            base_dir or Path.cwd(),
            set_aside,
            [p for p in problems if blocks_entry(p)],
        )
        problems = problems + relocate(found, spec.models, source)
    if problems or spec is None:
        raise SpecError(_in_order(problems), note=_waiting_note(waiting, spec is None))
    return spec


def _in_order(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.col or 0))


def _waiting_note(waiting: list[str], nothing_sound: bool = False) -> str:
    if nothing_sound:
        return (
            "not yet checked: names, references, files and sizes (the spec's structure has a "
            "problem above that leaves nothing sound to check; they are checked once it is fixed)"
        )
    if not waiting:
        return ""
    return (
        f"not yet checked: building the prompt sets and following dims for {', '.join(waiting)}"
        " (they read an entry with a problem above; they are checked once it is fixed)"
    )


def _register_sources() -> None:
    import mispec.sources  # noqa: F401 (the sources register their model entries)
