"""Where distributed work runs: a Dask cluster chosen by the same options everywhere.

Owns the cluster options of the firm-wide commands (`pes check-all`, `pes backtest`):
`--scheduler ADDRESS` (an existing Dask scheduler) or a `LocalCluster` started for the run
(`--workers N`, threads per worker 1, so a worker is a process and the GIL is not shared),
and a progress bar over futures. Exposes `add_cluster_options`, `ClusterOptions`,
`dask_client`, `ProgressBar` and `positive_int` (the options' argparse type). May import
nothing of the project (Dask is imported when a client is opened, so the `cluster` extra
is needed only by the commands that run on it).
"""

from api.cluster.client import ClusterOptions, add_cluster_options, dask_client, positive_int
from api.cluster.progress import ProgressBar

__all__ = ["ClusterOptions", "ProgressBar", "add_cluster_options", "dask_client", "positive_int"]
