"""The one onnxruntime session wrapper: thread counts, named inputs, warm-up on load.

Every ONNX graph of a bundle (document encoder, candidate scorer) is run through this class, so thread
settings and providers are chosen in one place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


class OnnxSession:
    """An onnxruntime CPU session with fixed thread counts.

    One intra-op thread by default: the service runs model work in one worker thread per replica and
    scales with replicas, so extra threads would only contend for the same cores.
    """

    def __init__(self, path: str | Path, intra_op_threads: int = 1, inter_op_threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = inter_op_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, **feeds: np.ndarray) -> np.ndarray:
        """The first output for the given named inputs (inputs the graph does not use are dropped)."""
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {sorted(missing)}")
        return self.session.run(self.output_names[:1], {n: feeds[n] for n in self.input_names})[0]

    def warm_up(self, **feeds: np.ndarray) -> None:
        """Run once so that the first request does not pay for lazy allocation."""
        self.run(**feeds)
