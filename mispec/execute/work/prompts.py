"""Building prompt sets at run time, checked against the model's vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mispec.errors import PromptError
from mispec.prompts.core import PromptSet
from mispec.spec.metrics import PromptSpec
from mispec.tasks.generators import PROMPT_GENERATORS


def build_prompts(
    name: str,
    prompt: PromptSpec,
    base_dir: Path,
    *,
    tokenizer: Any = None,
    d_vocab: int | None = None,
    n_ctx: int | None = None,
) -> PromptSet:
    """A prompt set as the model reads it: generated, or a text file tokenized (a text longer
    than the model's context ``n_ctx`` refused at its line, as ``validate`` does)."""
    if prompt.generator is not None:
        gen = PROMPT_GENERATORS.get(prompt.generator, base_dir)
        try:
            prompts = gen(seed=prompt.seed, **prompt.args)
        except (TypeError, ValueError) as exc:
            raise PromptError(
                f"prompts.{name}: generator '{prompt.generator}' failed: {exc}"
            ) from exc
    else:
        from mispec.prompts.text import load_text_prompts

        if tokenizer is None:
            raise PromptError(
                f"prompts.{name}: text prompts need a model with a tokenizer "
                "(set `tokenizer:` on path models without one)"
            )
        assert prompt.file is not None  # a prompt set has a generator or a file
        prompts = load_text_prompts(
            (base_dir / prompt.file).resolve(),
            tokenizer,
            prepend_bos=prompt.prepend_bos,
            max_tokens=prompt.max_tokens,
            limit=prompt.limit,
            n_ctx=n_ctx,
        )
    if d_vocab is not None and prompts.n and prompts.max_token() >= d_vocab:
        raise PromptError(
            f"prompts.{name}: token id {prompts.max_token()} is outside the model's vocabulary "
            f"(d_vocab = {d_vocab}); lower the generator's vocab or use a bigger model"
        )
    return prompts
