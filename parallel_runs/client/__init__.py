"""Talking to one ComfyUI server: its HTTP routes and websocket (`comfy_client`), many prompts
followed at once (`connector`, `prompt_run`), input uploads (`uploads`), starting or attaching
to a server process (`process`), decoded previews (`previews`) and what can go wrong
(`errors`)."""
