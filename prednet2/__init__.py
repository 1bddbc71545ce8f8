"""prednet2: self-supervised video representation learning by predictive coding."""

__version__ = "0.1.0"
