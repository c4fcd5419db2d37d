#!/usr/bin/env python
"""Method comparison: RDDPM, DDPM, AnoDDPM, RPCA and SSD across datasets and training contamination.

    python benchmarks/run.py                      # quick preset (README's main command)
    python benchmarks/run.py --preset full        # every dataset, 0/10/20/30 %, 3 seeds (GPU-sized, resumable)
    python benchmarks/run.py --datasets forging --methods 'rddpm:delta=0.3;ddpm' --contamination 0,0.2 --seeds 0,1

Writes results/<preset>/ (results.csv, timings.csv, summary.md, PNG plots); cells are cached in results/<preset>/cache.

Where the cells run: ``--executor local`` (default) uses ``--jobs`` worker processes on this machine;
``--executor ray`` makes each cell a Ray task (``pip install 'rddpm-signals[ray]'``) on the cluster at
``--ray-address`` / ``$RAY_ADDRESS``, else on a local Ray. The driver writes the same cache files and rows either way:

    python benchmarks/run.py --preset full --executor ray --ray-address ray://head:10001
"""

import sys

from rddpm_signals.harness import main

if __name__ == "__main__":
    sys.exit(main())
