"""MobileNAS: command line and end-to-end pipeline (search -> netadapt -> train -> export).

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (before
torch loads its OpenMP runtime, which reads it once): threads waiting at the end of a parallel
region sleep instead of spinning. With other processes on the cores, spinning threads burn the
time slices the working thread needs: under a load average of 6 on 2 cores, a 2-thread training
step of MobileNetV3-Small (batch 128, 1x28x28) took 8.8 s spinning and 1.0 s passive (1 thread:
1.5 s); see ``results/training/README.md``. Processes started from here (Ray workers, data
loaders) inherit it.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
