"""On-disk cache of per-image proposals, keyed by image content and search parameters.

Layout: ``<root>/<params key>/<first 2 hex digits>/<content hash>.npy``, one ``[P, 4]`` float32
xyxy array (stored-image pixels) per image, and ``params.json`` beside them saying what the key
stands for. The content hash is taken over the image file's bytes (``image_file_key``: with
"upright" mixed in for a file whose EXIF orientation turns it), or, for images that live in
memory, over the pixels; so renaming or moving a dataset keeps its cache, an edited image is
searched again, and a changed search parameter selects another folder.
Writes are atomic (temporary file + ``os.replace``), so parallel workers and interrupted runs
never leave a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from detkit.data.image_files import turned_by_exif
from detkit.data.proposals.methods import ProposalParams, params_from_options, search_proposals

DEFAULT_CACHE_DIR = "~/.cache/detkit/proposals"


def default_cache_dir() -> Path:
    """``$DETKIT_PROPOSAL_CACHE`` or ``~/.cache/detkit/proposals``."""
    return Path(os.environ.get("DETKIT_PROPOSAL_CACHE", DEFAULT_CACHE_DIR)).expanduser()


def hash_bytes(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    """Content hash of a file (its bytes; decoding is not needed to recognise an image)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_file_key(path: str | os.PathLike) -> str:
    """The cache key of an image file's proposals: the hash of its bytes. For a file whose EXIF
    orientation turns it, "upright" is mixed in: its proposals are searched on the picture as a
    viewer shows it, and entries that older detkit versions wrote from the stored (unturned) pixels
    under the plain hash must not be read back. Every other file keeps its plain hash, so caches
    written before stay valid."""
    data = Path(path).read_bytes()  # read once: hashed, and its headers parsed from memory
    content = hash_bytes(data)
    return hash_bytes(f"{content}:upright".encode()) if turned_by_exif(io.BytesIO(data)) else content


def hash_pixels(image: np.ndarray) -> str:
    """Content hash of an in-memory image (pixels, shape and dtype)."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}{image.dtype}".encode())
    digest.update(memoryview(image).cast("B"))
    return digest.hexdigest()


class ProposalCache:
    """Proposals of images under one set of search parameters (of any proposal method: see
    ``detkit.data.proposals.methods``), stored below ``root``."""

    def __init__(self, root: str | os.PathLike | None, params: ProposalParams) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.params = params
        self.folder = self.root / params.key()

    def path(self, content_hash: str) -> Path:
        return self.folder / content_hash[:2] / f"{content_hash}.npy"

    def get(self, content_hash: str) -> np.ndarray | None:
        """The cached ``[P, 4]`` float32 boxes, or ``None`` when absent. A corrupt entry (an
        interrupted write from a foreign tool, a truncated disk) counts as absent."""
        path = self.path(content_hash)
        try:
            boxes = np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # absent (FileNotFoundError is an OSError) or unreadable
            return None
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            return None
        return boxes.astype(np.float32, copy=False)

    def put(self, content_hash: str, boxes: np.ndarray) -> Path:
        """Store ``boxes: [P, 4]`` float32 xyxy atomically; returns the entry's path."""
        boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4)
        path = self.path(content_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_params()
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.save(file, boxes, allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def get_or_search(self, content_hash: str, image: np.ndarray) -> np.ndarray:
        """The cached proposals of ``image`` (RGB uint8 [H, W, 3], whose content ``content_hash``
        names), searched with this cache's method and parameters and stored when absent."""
        boxes = self.get(content_hash)
        if boxes is None:
            boxes = search_proposals(image, self.params)
            self.put(content_hash, boxes)
        return boxes

    def _write_params(self) -> None:
        marker = self.folder / "params.json"
        if marker.exists():
            return
        text = json.dumps({"params": self.params.describe(), "key": self.params.key()}, indent=2)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, marker)


def config_proposal_cache(cfg) -> ProposalCache:
    """The cache, search method and settings of a config's proposals (``data.proposals.wrapper``):
    what a checkpoint's predictor and its INT8 calibration search and read proposals with."""
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(cfg.data.get("proposals", {}).get("wrapper", {}), resolve=True)
    return ProposalCache(options.get("cache_dir"), params_from_options(options))
