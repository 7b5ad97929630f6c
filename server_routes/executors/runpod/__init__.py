"""RunPod serverless: the settings (`config`), the relay that follows jobs with adaptive
polling (`relay`, `poll_planner`), the ComfyUI events made from the worker's progress
(`events`) and how a job ends (`endings`)."""
