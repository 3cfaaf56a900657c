"""The shared part of dataset wrappers (mosaic, mixup): same length, and the wrapped dataset's
interface (``class_names``, ``category_ids``, ``records``, ``coco_ground_truth``, ...) passed through,
so the engine sees no difference."""

from __future__ import annotations


class DatasetWrapper:
    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        # Only called for names the wrapper lacks. "dataset" itself must not recurse (it is missing
        # while an unpickled copy, e.g. in a DataLoader worker, is being rebuilt).
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
