"""The one onnxruntime session wrapper: thread counts, named inputs, and the graph's bytes for saving.

Every ONNX graph of a bundle (document encoder, candidate scorer, attention levels, matcher) is run
through this class, so thread settings and providers are chosen in one place. A session is made from a
file of a bundle or from the bytes an export just produced; either way `save` writes the same graph, so
a part trained a moment ago and a part loaded from disk are saved alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort


class OnnxSession:
    """An onnxruntime CPU session with fixed thread counts.

    One intra-op thread by default: the service runs model work in one worker thread per replica and
    scales with replicas, so extra threads would only contend for the same cores.
    """

    def __init__(
        self, model: str | Path | bytes, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = inter_op_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.source: Path | bytes = model if isinstance(model, bytes) else Path(model)
        self.name = "graph" if isinstance(self.source, bytes) else self.source.name
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, **feeds: np.ndarray) -> np.ndarray:
        """The first output for the given named inputs (inputs the graph does not use are dropped)."""
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ValueError(f"{self.name}: missing inputs {sorted(missing)}")
        return self.session.run(self.output_names[:1], {n: feeds[n] for n in self.input_names})[0]

    def save(self, path: Path) -> None:
        """Write the graph to ``path``: the exported bytes, or a copy of the file it was loaded from."""
        if isinstance(self.source, bytes):
            path.write_bytes(self.source)
        elif self.source.resolve() != path.resolve():
            shutil.copyfile(self.source, path)


EXPORT_KEYS = ("opset", "parity_max_abs_diff")


def export_info_of(meta: dict[str, object] | None) -> dict[str, object]:
    """What an ONNX part's manifest entry says of its export (opset, measured parity), kept on reload."""
    return {k: v for k, v in (meta or {}).items() if k in EXPORT_KEYS}
