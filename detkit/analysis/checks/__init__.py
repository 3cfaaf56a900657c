"""Checks of what a detector is given: sliding windows against selective-search and Edge Boxes proposals."""
