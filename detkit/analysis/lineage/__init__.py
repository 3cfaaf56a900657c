"""The lineage table: trained detectors of every family side by side in accuracy and inference speed,
as a table and a picture.
"""
