"""RunPod serverless worker for Parallel Runs: `python -m parallel_runs.worker` next to a
ComfyUI (COMFY_URL). Kept out of `parallel_runs`' own imports: it needs the `runpod` SDK."""
