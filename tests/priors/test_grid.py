import pytest
import torch

from detkit.priors.grid import AnchorGrid, grid_cells


def test_grid_cells_are_row_major_column_row_pairs():
    cells = grid_cells(2, 3)
    expected = torch.tensor([[0.0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]])
    torch.testing.assert_close(cells, expected)


def test_anchor_grid_flattens_level_then_row_then_column_then_anchor():
    anchors = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    grid = AnchorGrid(anchors, strides=[8, 16])
    priors = grid([(2, 3), (1, 2)])
    assert priors.level_starts == (0, 12, 16)
    assert priors.cells.shape == (16, 2) and priors.anchors.shape == (16, 2) and priors.strides.shape == (16,)
    # Level 0, cell (x=1, y=0), anchor 1 is prior (0·3 + 1)·2 + 1 = 3.
    torch.testing.assert_close(priors.cells[3], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(priors.anchors[3], torch.tensor([3.0, 4.0]))
    # Level 0, cell (x=0, y=1), anchor 0 is prior (1·3 + 0)·2 = 6.
    torch.testing.assert_close(priors.cells[6], torch.tensor([0.0, 1.0]))
    # Level 1 starts at 12: cell (0, 0) anchors 0, 1, then cell (1, 0).
    torch.testing.assert_close(priors.anchors[12:16], torch.tensor([[5.0, 6], [7, 8], [5, 6], [7, 8]]))
    torch.testing.assert_close(priors.cells[14], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(priors.strides, torch.tensor([8.0] * 12 + [16.0] * 4))
    assert grid([(2, 3), (1, 2)]) is priors  # cached per size


def test_anchor_grid_rejects_bad_anchors():
    with pytest.raises(ValueError, match=r"shape \[L, A, 2\]"):
        AnchorGrid([[1, 2], [3, 4]], strides=[8, 16])
    with pytest.raises(ValueError, match="3 anchor groups for 2 feature levels"):
        AnchorGrid([[[1, 2]], [[3, 4]], [[5, 6]]], strides=[8, 16])
    with pytest.raises(ValueError, match="positive"):
        AnchorGrid([[[1, 0]]], strides=[8])
    with pytest.raises(ValueError, match="1 feature maps for 2 anchor levels"):
        AnchorGrid([[[1, 2]], [[3, 4]]], strides=[8, 16])([(4, 4)])
