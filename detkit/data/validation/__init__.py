"""What is wrong with a dataset's files, found while it is read: problems and the policy for them, box
checks, the remembered image check, the summary and pictures of detkit check.
"""
