"""Run a detkit ONNX export with onnxruntime alone: no detkit, no torch; numpy, OpenCV, onnxruntime.

    python onnx_inference.py model.onnx image.jpg [image2.png ...] [--score 0.3]
    python onnx_inference.py fast_rcnn.onnx image.jpg --proposals image_boxes.npy   # Fast R-CNN, R-CNN

Prints one JSON object, ``{image file: [{"box": [x1, y1, x2, y2], "score": s, "label": name}, ...]}``,
boxes in each image's own pixels. The preprocessing is detkit's eval transform: RGB, longest side
resized to the model's input size (bilinear), padded right and bottom with zeros, divided by 255;
the ImageNet normalisation, box decoding and NMS happen inside the ONNX graph.
"""

import argparse
import json

import cv2
import numpy as np
import onnxruntime


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """RGB uint8 [H, W, 3] -> float32 [3, size, size] in [0, 1], and the (x, y) scale applied."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    if (new_height, new_width) != (height, width):
        image = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:new_height, :new_width] = image
    return canvas.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255), (new_width / width, new_height / height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--score", type=float, default=0.3, help="keep detections scoring at least this")
    parser.add_argument("--proposals", nargs="+", help="one .npy file of [P, 4] xyxy boxes per image")
    args = parser.parse_args()

    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    info = json.loads(session.get_modelmeta().custom_metadata_map["detkit"])
    size, names = info["input_size"], info["class_names"]
    input_names = [node.name for node in session.get_inputs()]

    stored, batch, scales = [], [], []
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)  # EXIF orientation applied: upright, as detkit reads images
        if image is None:
            raise SystemExit(f"cannot read image {path}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        pixels, scale = letterbox(image, size)
        stored.append(image.shape[:2])
        batch.append(pixels)
        scales.append(np.array([scale[0], scale[1], scale[0], scale[1]], np.float32))
    feed = {"images": np.stack(batch)}
    if "proposals" in input_names:
        if not args.proposals or len(args.proposals) != len(args.images):
            raise SystemExit("this model scores proposals: pass --proposals with one .npy file per image")
        # Proposals in stored pixels -> input pixels, padded to one [B, P, 4] array with a count each.
        boxes = [np.load(path).astype(np.float32).reshape(-1, 4) * s for path, s in zip(args.proposals, scales)]
        padded = np.zeros((len(boxes), max(1, max(len(b) for b in boxes)), 4), np.float32)
        for index, b in enumerate(boxes):
            padded[index, : len(b)] = b
        feed["proposals"] = padded
        feed["num_proposals"] = np.array([len(b) for b in boxes], np.int64)

    boxes, scores, labels, counts = session.run(["boxes", "scores", "labels", "num_detections"], feed)
    results = {}
    for index, path in enumerate(args.images):
        height, width = stored[index]
        count = int(counts[index])
        # Input pixels -> the image's own pixels: undo the resize, clip to the image.
        original = boxes[index, :count] / scales[index]
        original[:, 0::2] = original[:, 0::2].clip(0, width)
        original[:, 1::2] = original[:, 1::2].clip(0, height)
        results[path] = [
            {"box": [float(v) for v in box], "score": float(score), "label": names[label - 1] if names else int(label)}
            for box, score, label in zip(original, scores[index, :count], labels[index, :count])
            if score >= args.score
        ]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
