"""Video data for prednet2: raw folders, labelled folders, synthetic generators (installed as prednet2.datasets)."""
