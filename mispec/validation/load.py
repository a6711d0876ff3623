"""Load a spec and check it whole: the schema (``mispec.spec.load``), then every name,
reference, file and size it names (``checks``), each problem at its file:line:col.

Loading imports ``mispec.sources`` (its sources register their entry classes, the members of
the schema's ``models:`` union) and the checks on first use, not at import: ``import
mispec.api`` stays light for the CLI's start-up."""

from __future__ import annotations

from pathlib import Path

from mispec.errors import SpecError
from mispec.spec.load import LoadedSpec, read_spec, read_spec_text
from mispec.spec.schema import Spec


def load_spec(path: str | Path, *, check: bool = True) -> LoadedSpec:
    """Parse, merge ``include:``s, validate structure, then cross-check names and references."""
    _register_sources()
    loaded = read_spec(path)
    if check:
        from mispec.spec.sweep import relocate
        from mispec.validation.checks import check_spec

        problems = relocate(
            check_spec(loaded.spec, loaded.source, Path(path).parent),
            loaded.spec.models,
            loaded.source,
        )
        if problems:
            raise SpecError(problems)
    return loaded


def load_spec_text(text: str, file: str = "<spec>", base_dir: Path | None = None) -> Spec:
    """Validate spec text (no includes); used for specs read from git history."""
    from mispec.validation.checks import check_spec

    _register_sources()
    spec, source = read_spec_text(text, file)
    problems = check_spec(spec, source, base_dir or Path.cwd())
    if problems:
        raise SpecError(problems)
    return spec


def _register_sources() -> None:
    import mispec.sources  # noqa: F401 (the sources register their model entries)
