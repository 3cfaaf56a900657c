"""The tiny COCO ground truth and results builders of the evaluation tests, for the report tests."""

from tests.evaluation.conftest import make_dets, make_gt  # noqa: F401  (fixtures, found by name)
