"""ONNX, TorchScript and torch.export files of detkit detectors, with the postprocessing inside
the graph, and the check of each file against the PyTorch model (see ``exporter``); INT8 models
of the ONNX files for the CPU runtimes (``quantize``)."""

from detkit.export.exporter import export_checkpoint, export_model, format_report, load_for_export
from detkit.export.graphs import detection_graph
from detkit.export.quantize import QuantizationSettings, calibration_feeds, quantize_graph
from detkit.export.writers import EXPORT_FORMATS

__all__ = [
    "EXPORT_FORMATS",
    "QuantizationSettings",
    "calibration_feeds",
    "detection_graph",
    "export_checkpoint",
    "export_model",
    "format_report",
    "load_for_export",
    "quantize_graph",
]
