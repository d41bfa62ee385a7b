"""The training feature: subjects with consent, photos, training jobs on sd-scripts, erasure."""
