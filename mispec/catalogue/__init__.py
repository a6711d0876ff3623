"""The catalogue of what a spec can name (``mispec list``, ``docs/catalogue.md``, editor enums)."""
