"""Data and settings shared by the two-process check and its one-process reference."""

import numpy as np

N = 20_000
SIGMA = 4.0
SLQ_SETTINGS = dict(num_probes=4, num_matvecs=8, deflation_rank=4, block_size=500)
DSMI_SETTINGS = dict(sigma=3.0)


def data():
    """``x`` ``[N, 8]`` for the stochastic DSE; ``z`` ``[1200, 5]`` with 4 classes ``y`` for DSMI."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 8)).astype(np.float32)
    y = np.arange(1200) % 4
    z = (rng.normal(size=(1200, 5)) + y[:, None]).astype(np.float32)
    return x, z, y
