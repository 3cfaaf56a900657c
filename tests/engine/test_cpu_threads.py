"""engine.num_threads sets torch's CPU threads; a bad value is named."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from detkit.engine.build import ConfigError
from detkit.engine.runtime import set_cpu_threads


def test_num_threads_is_applied_and_null_keeps_the_default() -> None:
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_cpu_threads(OmegaConf.create({"engine": {"num_threads": None}}))
        assert torch.get_num_threads() == 2
        set_cpu_threads(OmegaConf.create({"engine": {"num_threads": 1}}))
        assert torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="num_threads"):
            set_cpu_threads(OmegaConf.create({"engine": {"num_threads": 0}}))
    finally:
        torch.set_num_threads(previous)
