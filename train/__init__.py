"""Entry points: ``python -m train.main --config configs/<name>.py --workdir DIR``."""
