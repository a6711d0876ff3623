"""Open a run's results: the labelled ``DataTree`` of a run folder, every byte verified."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mispec.errors import ResultsError

if TYPE_CHECKING:
    import xarray as xr


def open_results(path: str | Path) -> xr.DataTree:
    """The results ``DataTree`` of a run folder or its ``results.zarr``."""
    import xarray as xr

    p = Path(path)
    if (p / "results.zarr").exists():
        p = p / "results.zarr"
    if not p.exists():
        raise ResultsError(f"no results at {p.resolve()}: run `mispec run SPEC` first")
    if not (p / "zarr.json").is_file():
        raise ResultsError(
            f"{p.resolve()} is not a mispec run folder or results.zarr "
            "(expected runs/<name>/ holding results.zarr)"
        )
    import warnings

    from mispec.store.checksums import check_run_folder

    check_run_folder(p.parent)  # every byte read below verifies, or it is refused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return xr.open_datatree(p, engine="zarr")
        except (OSError, ValueError, KeyError) as exc:  # zarr errors are ValueErrors
            raise ResultsError(
                f"cannot read the results at {p.resolve()} ({type(exc).__name__}: {exc}); "
                "re-run `mispec run SPEC` to write them again"
            ) from exc
