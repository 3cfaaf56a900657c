"""The built-in synthetic data: the shapes task (the default dataset) and the harder scenes task,
rendered and written in every layout.
"""
