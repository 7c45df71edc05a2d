"""dlbench: tuned, tracked and statistically compared deep-learning ablations."""

__version__ = "0.1.0"
