"""Export a trained detector for deployment, then check the exported file against PyTorch.

    detkit export checkpoint=outputs/.../best.pt format=onnx [output=model.onnx]
    detkit export checkpoint=... format=torchscript max_detections=50 input=samples/
    detkit export checkpoint=... format=pt2 model.head.score_threshold=0.3

Formats: onnx (needs the `export` extra: `pip install "detkit[export]"`), torchscript (traced),
pt2 (torch.export; not for SSD). The exported graph holds the whole detector: normalisation,
network, box decoding, NMS and a cap of `max_detections` per image, with a dynamic batch at the
fixed `input_size` (default: the checkpoint's). Fast R-CNN and R-CNN take proposals as a second
input. After writing, the file runs on sample images (`input=IMAGE_OR_DIR`, default: the first
validation images of the checkpoint's data) with its own runtime, and the largest box and score
differences against PyTorch are printed; exit code 1 when they exceed the tolerances. Other
key=value arguments override the checkpoint's config (thresholds and caps are fixed in the
graph). docs/EXPORT.md has the graph's inputs and outputs and a script that runs it with
onnxruntime alone.
"""

from __future__ import annotations

from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("checkpoint", "format", "output", "input_size", "max_detections", "input")


def run(argv: list[str]) -> int:
    from detkit.commands.predict import list_images
    from detkit.export import export_checkpoint, format_report

    own, overrides = split_arguments(argv, OWN_KEYS)
    if "checkpoint" not in own:
        raise ConfigError(
            "usage: detkit export checkpoint=PATH format=onnx|torchscript|pt2 [output=PATH] [key=value ...]"
        )
    report = export_checkpoint(
        own["checkpoint"],
        format=own.get("format", "onnx"),
        output=own.get("output"),
        input_size=int(own["input_size"]) if "input_size" in own else None,
        max_detections=int(own["max_detections"]) if "max_detections" in own else None,
        sample_images=list_images(Path(own["input"])) if "input" in own else None,
        overrides=overrides,
    )
    print(format_report(report))
    return 0 if report["check"]["passed"] else 1
