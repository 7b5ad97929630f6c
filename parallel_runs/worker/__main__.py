"""`python -m parallel_runs.worker`: start the RunPod worker loop with the ComfyUI handler."""

from .handler import main

main()
