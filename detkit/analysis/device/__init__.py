"""Device checks: AMP box parity, host syncs per step, the per-detector GPU checks and the small fixed
batches they run on.
"""
