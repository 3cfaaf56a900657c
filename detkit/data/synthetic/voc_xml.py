"""The PASCAL VOC annotation file the synthetic generators write, one per image."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence


def voc_xml(
    filename: str, width: int, height: int, objects: Iterable[tuple[Sequence[int], str, bool, bool | None]]
) -> ElementTree.ElementTree:
    """The ``<annotation>`` of image ``filename`` (in ``JPEGImages``) with one ``<object>`` per
    ``(xyxy integer box, class name, truncated, occluded)``; ``occluded`` None leaves the tag out."""
    annotation = ElementTree.Element("annotation")
    ElementTree.SubElement(annotation, "folder").text = "JPEGImages"
    ElementTree.SubElement(annotation, "filename").text = filename
    size = ElementTree.SubElement(annotation, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, tag).text = str(value)
    ElementTree.SubElement(annotation, "segmented").text = "0"
    for (x1, y1, x2, y2), name, cut, hidden in objects:
        obj = ElementTree.SubElement(annotation, "object")
        ElementTree.SubElement(obj, "name").text = name
        ElementTree.SubElement(obj, "pose").text = "Unspecified"
        ElementTree.SubElement(obj, "truncated").text = str(int(cut))
        if hidden is not None:
            ElementTree.SubElement(obj, "occluded").text = str(int(hidden))
        ElementTree.SubElement(obj, "difficult").text = "0"
        bndbox = ElementTree.SubElement(obj, "bndbox")
        # VOC counts pixels from 1 and includes the last one: continuous [x1, x2) -> [x1 + 1, x2].
        for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ElementTree.SubElement(bndbox, tag).text = str(value)
    tree = ElementTree.ElementTree(annotation)
    ElementTree.indent(tree)
    return tree
