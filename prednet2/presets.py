"""Model presets: named sets of ModelConfig fields, registered with ``prednet2.config.register_preset``.

- ``tiny``: 3 units (16, 32, 64), ConvGRU, stem 2 (layer 0 at H/2), 1x1 input-to-hidden convs. The ``make demo``
  default: trains at >= 100 frames/s at 64x64 on 2 CPU cores in local mode (docs/results/model.md).
- ``small``: 3 units (32, 64, 128), stem 2, 3x3 convs.
- ``base``: 4 units (64, 128, 256, 256), stem 1, 3x3 convs (a GPU preset).
- ``prednet``: a faithful PredNet (Lotter, Kreiman and Cox 2016), the KITTI stack (3, 48, 96, 192): pixel target
  at layer 0, ConvLSTM, L_0 layer weights [1, 0, 0, 0], trained end-to-end. ``--set model.layer_weights=[1,.1,.1,.1]``
  gives the L_all variant.
"""

from __future__ import annotations

from .config import register_preset

PRESETS = {
    # stem 2 + 1x1 input convs: 8x fewer FLOPs than stem 1 + 3x3, what makes >= 100 frames/s on 2 cores possible
    "tiny": {"channels": [16, 32, 64], "cell": "gru", "stem": 2, "input_kernel": 1},
    "small": {"channels": [32, 64, 128], "cell": "gru", "stem": 2, "input_kernel": 3},
    "base": {"channels": [64, 128, 256, 256], "cell": "gru", "stem": 1, "input_kernel": 3},
    # The KITTI stack of Lotter et al. 2016 (prednet2/prednet.py); train.py forces train.mode=end_to_end for it.
    "prednet": {
        "arch": "prednet",
        "channels": [3, 48, 96, 192],
        "cell": "lstm",
        "kernel_size": 3,
        "input_kernel": 3,
        "stem": 1,
        "target": "pixel",
        "anti_collapse": "none",
        "layer_weights": [1.0, 0.0, 0.0, 0.0],
        "error_loss": "l1",  # PredNet has its own L1 error (prednet2/prednet.py); these keep unused_options quiet
        "error_weight": 1.0,
        "motion_channels": 0,
        "flow_weight": 0.0,  # no motion stream, so no flow target (the stack's default puts one on its ends)
    },
}

for _name, _fields in PRESETS.items():
    register_preset(_name, _fields)
