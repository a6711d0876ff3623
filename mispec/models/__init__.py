"""Model sources: (model, seed, step) → a TransformerLens 4 ``TransformerBridge``, fast."""
