"""Wrappers of PromptServer methods: prompt-scoped progress text (`progress_scope`) and the
start times of local prompts (`start_times`). Each checks first that what it wraps looks as
expected (`guard`) and never raises inside ComfyUI's loops (`fallback`)."""
