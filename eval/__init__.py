"""Evaluation of frozen prednet2 features: linear probes, next-step prediction, surprise (prednet2.eval)."""

from prednet2.envcheck import tool_loading

with tool_loading("sklearn.linear_model", "torch"):  # `python -m eval.TOOL`: they load here, a Ctrl-C is one line
    pass
