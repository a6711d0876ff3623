"""The fast tier (`make test-fast`): no trained fixture, no study run."""
