"""MobileNAS: command line and end-to-end pipeline (search -> netadapt -> train -> export)."""
__version__ = "0.1.0"
