"""data.input_size=auto: the median longer image side, rounded up to the stride, within the range."""

from __future__ import annotations

import pytest

from detkit.data.input_size import choose_input_size


def test_median_side_rounded_up_to_the_multiple() -> None:
    # Sides 240, 300, 352 → median 300 → 320 (the next multiple of 32).
    assert choose_input_size([240, 352, 300], min_size=160, max_size=640) == 320
    assert choose_input_size([160] * 5, min_size=160, max_size=320) == 160  # the built-in shapes stay at 160


def test_clamped_to_the_recipes_range() -> None:
    assert choose_input_size([1000, 1200], min_size=160, max_size=320) == 320
    assert choose_input_size([64, 80], min_size=160, max_size=320) == 160
    # Limits that are not multiples are rounded inwards: [100, 330] with 32 → [128, 320].
    assert choose_input_size([90], min_size=100, max_size=330) == 128
    assert choose_input_size([5000], min_size=100, max_size=330) == 320


def test_no_images_gives_the_lower_limit_and_bad_limits_fail() -> None:
    assert choose_input_size([], min_size=160, max_size=320) == 160
    with pytest.raises(ValueError, match="min"):
        choose_input_size([200], min_size=320, max_size=160)
