"""What every learned model in perception shares: the error for a model file that cannot be used,
and how its onnxruntime sessions are set up on an edge CPU."""
from __future__ import annotations

import onnxruntime


class ModelFileError(RuntimeError):
    """A model file that is missing, unreadable or of the wrong kind; the text names the file and the fix."""


def cpu_session_options(threads: int, spin: bool = False) -> onnxruntime.SessionOptions:
    """Session options for a small CPU model that shares the cores with other nodes. `spin`: the
    worker threads wait for the next operator spinning instead of sleeping, during a run only."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    # spinning threads would otherwise go on spinning after a run, taking the cores from everything else
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options
