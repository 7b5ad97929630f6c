"""Running a prompt somewhere other than this ComfyUI's own queue.

Shared by every executor: the routes (`routes`, `POST /parallel/offload/...`), the durable job
records (`registry`), the input files a prompt sends along (`inputs`), saving remote results
into the output folder (`outputs`), and the wiring on a PromptServer (`install`). One folder
per executor kind holds what only it needs: `runpod/` (its settings, the relay that follows
jobs by polling, the events it relays and how jobs end).
"""
