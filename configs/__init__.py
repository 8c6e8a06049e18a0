"""Experiment configs: ``configs/<name>.py:get_config()`` returns an `ml_collections.ConfigDict`."""
