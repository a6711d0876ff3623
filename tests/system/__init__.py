"""Tests that train, run studies or start processes (`make test` runs both tiers)."""
