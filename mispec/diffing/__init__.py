"""``mispec diff``: what changed between two spec versions — in the spec, the plan, the results."""

from mispec.diffing.compare import Diff, diff

__all__ = ["Diff", "diff"]
