"""Training-time augmentation and the letterbox every split goes through: albumentations transforms,
mosaic, MixUp.
"""
