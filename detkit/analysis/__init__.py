"""Tools that measure and check trained or untrained detectors: speed, device behaviour, the lineage
table, dataset and window checks. Built on the engine; nothing below imports from here.
"""
