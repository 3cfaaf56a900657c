"""ONNX, TorchScript and torch.export files of detkit detectors, with the postprocessing inside
the graph, and the check of each file against the PyTorch model (see ``exporter``)."""

from detkit.export.exporter import export_checkpoint, export_model, format_report, load_for_export
from detkit.export.graphs import detection_graph
from detkit.export.writers import EXPORT_FORMATS

__all__ = ["EXPORT_FORMATS", "detection_graph", "export_checkpoint", "export_model", "format_report", "load_for_export"]
