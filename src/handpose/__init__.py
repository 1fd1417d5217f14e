"""handpose: 3D hand pose estimation from one RGB image, as a DVC pipeline (dvc.yaml)."""

import os

# Intel MKL (torch's BLAS and vector maths on x86) can race on its first multi-threaded call: on an Intel
# Xeon with AMX, some processes computed one thread's half of their first torch.sqrt at 3e-4 relative
# error (RMSprop's first step), and training took another path (docs/results.md#reproducibility). MKL's
# COMPATIBLE mode does not. MKL reads it at its first call, so it is set when handpose is imported, before
# any op of a stage; a value of your own is kept.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
