"""`detkit fit-anchors` (tools/fit_anchors.py) end to end on a tiny generated shapes dataset."""

import pytest
import torch
import yaml

from detkit.cli import main
from detkit.engine.build import build_dataset, load_config
from detkit.priors.kmeans import dataset_box_shapes, group_by_level, kmeans_anchors


@pytest.fixture(scope="module")
def data_overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return ["data=shapes", f"data.root={root}", "data.num_train=16", "data.num_val=4", "data.num_workers=0"]


def test_prints_and_writes_every_kind(data_overrides, tmp_path, capsys):
    output = tmp_path / "anchors.yaml"
    assert main(["fit-anchors", *data_overrides, "k=6", "levels=3", "seed=1", f"output={output}"]) == 0
    result = yaml.safe_load(output.read_text())
    assert yaml.safe_load(capsys.readouterr().out) == result
    groups = result["yolov3"]["model.head.anchors"]
    assert [len(g) for g in groups] == [2, 2, 2]
    areas = [w * h for group in groups for w, h in group]
    assert areas == sorted(areas)
    # The tool is a thin layer: the same numbers come from the library on the same boxes.
    cfg = load_config(data_overrides)
    wh = dataset_box_shapes(build_dataset(cfg, "train", augment=False))
    assert result["boxes"] == wh.shape[0]
    assert groups == group_by_level(kmeans_anchors(wh, 6, seed=1), 3)
    assert 0.5 < result["yolov3"]["mean_best_iou"] <= 1.0
    sizes = result["rpn"]["model.proposal_generator.anchor_sizes"]
    assert (
        len(sizes) == 3 and sizes == sorted(sizes) and len(result["rpn"]["model.proposal_generator.aspect_ratios"]) == 3
    )
    ssd = result["ssd"]
    assert all(r >= 1 for r in ssd["model.head.aspect_ratios"])
    assert 0 < ssd["model.head.min_scale"] < ssd["model.head.max_scale"] < 1


def test_yolov2_gets_five_anchors_in_one_flat_group(data_overrides, capsys):
    assert main(["fit-anchors", *data_overrides, "for=yolov2"]) == 0
    result = yaml.safe_load(capsys.readouterr().out)
    anchors = result["yolov2"]["model.head.anchors"]
    wh = dataset_box_shapes(build_dataset(load_config(data_overrides), "train", augment=False))
    assert anchors == group_by_level(kmeans_anchors(wh, 5, seed=0), 1)[0]
    assert len(anchors) == 5 and all(len(pair) == 2 for pair in anchors)
    assert set(result) == {"boxes", "input_size", "yolov2"}


def test_bad_arguments_are_reported(data_overrides, capsys):
    assert main(["fit-anchors", *data_overrides, "for=retinanet"]) == 2
    assert "for=retinanet is not one of yolov2, yolov3, rpn, ssd, all" in capsys.readouterr().err
    assert main(["fit-anchors", *data_overrides, "k=100000", "for=yolov3"]) == 2
    assert "cannot fit 100000 clusters" in capsys.readouterr().err


def test_dataset_box_shapes_reads_targets():
    class Tiny(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            boxes = torch.tensor([[0.0, 0, 4, 2]]) if i == 0 else torch.zeros(0, 4)
            return torch.zeros(3, 8, 8), {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.long)}

    torch.testing.assert_close(dataset_box_shapes(Tiny()), torch.tensor([[4.0, 2.0]]))
