"""RunPod serverless from the ComfyUI side: the REST client (`client`) and the typed shapes of
its answers and of the worker contract (`models`). The heavy `runpod` SDK is not imported here:
only the worker (`parallel_runs.worker`) uses it."""
