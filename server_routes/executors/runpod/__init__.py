"""RunPod serverless as an executor (`executor`): its settings (`config`), the adaptive polling
schedule (`poll_planner`) and the ComfyUI events made from the worker's progress (`events`)."""
