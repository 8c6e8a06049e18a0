"""`ConfigError`, the error of a run's settings, where every training module can import it."""


class ConfigError(ValueError):
  """A config value, key or workdir that does not fit: the user's to fix."""
