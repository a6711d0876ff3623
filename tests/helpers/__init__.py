"""Builders of tiny local checkpoints (HF GPT-NeoX folders and hub caches, legacy TL state dicts) shared by tests and benchmarks."""
