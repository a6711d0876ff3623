"""The prompt set: token arrays plus labelled extras, what every metric that reads prompts gets.

Tasks (:mod:`mispec.tasks`), pure generators (:mod:`mispec.prompts.generators`) and text
files (:mod:`mispec.prompts.text`) all build one. This module imports nothing else of
mispec, so each of them can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PromptSet:
    """A batch of prompts for one forward pass.

    ``tokens``: int64 ``[batch, pos]`` (BOS already prepended when the set uses one).
    ``extras``: arrays aligned with the batch, by convention:
      ``corrupt_tokens`` [batch, pos] (clean/corrupt pairs for patching),
      ``answer`` / ``wrong_answer`` [batch] (token ids for a logit difference),
      ``answer_pos`` [batch] (position whose logits predict the answer; default last),
      ``loss_mask`` [batch, pos-1] (which next-token predictions count, e.g. the repeated half),
      ``train_mask`` [batch] (modular addition: pair in the training split).
    ``meta``: JSON-able facts (vocab size, half_len, p ...) that metrics may read.
    """

    tokens: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    has_bos: bool = True

    def __post_init__(self) -> None:
        if self.tokens.ndim != 2:
            raise ValueError(f"prompt tokens must be [batch, pos], got shape {self.tokens.shape}")
        for name, arr in self.extras.items():
            if arr.shape[0] != self.tokens.shape[0]:
                raise ValueError(f"extra '{name}' has batch {arr.shape[0]} != {self.n}")

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    def max_token(self) -> int:
        arrays = [self.tokens] + [
            v for k, v in self.extras.items() if k.endswith("tokens") or k.endswith("answer")
        ]
        return int(max(a.max() for a in arrays if a.size))
