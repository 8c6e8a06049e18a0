"""Helpers shared by several test modules: writers of small files in real formats, reference
implementations, subprocess launchers and small models. Nothing here is a test; test modules
import from here, never from one another."""
