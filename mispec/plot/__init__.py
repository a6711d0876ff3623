"""Plots of metrics over training and a self-contained HTML report (the `plot` extra)."""
