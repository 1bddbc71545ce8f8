"""Evaluation of frozen prednet2 features: linear probes, next-step prediction, surprise (prednet2.eval)."""
