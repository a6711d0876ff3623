"""How a mispec process ends: the ``mispec`` program and a lane's worker process."""

from __future__ import annotations


def end_without_gc_walk() -> None:
    """Let the interpreter end without its collector walking every object first. torch's,
    TransformerLens' and transformers' modules hold millions of objects, and the collections
    of a plain exit took 1.3-1.8 s here: after the command's last line, or between a lane's
    last node and the run going on. Everything else ends as usual (threads joined, exit
    handlers run, files flushed and closed as their references go); only cyclic garbage left
    at exit is not collected, as the process ends."""
    import gc

    gc.freeze()
