"""The frontend's own queue and job lists, with the prompts that run on other executors.

The stock frontends list prompts from ComfyUI's routes: the pinned one from `GET /queue` (and
`/history`), the newest from the jobs API (`GET /jobs`, `POST /jobs/{id}/cancel`, ...). Here:
- `shapes`: prompts in those routes' shapes (local queue items and history, offloaded jobs);
- `listing`: the jobs API's query, filters, order and pages;
- `sources`: ComfyUI's prompt queue and the offloaded jobs, as the routes use them;
- `jobs_api`: the jobs API for a ComfyUI that has none (0.3.75 has no `/jobs`);
- `wrappers`: ComfyUI's own list and cancel routes with the offloaded prompts added;
- `install`: which of the two each route gets on a running PromptServer.
Every list honours `parallel_client=<client id>`: only that client's prompts.
"""
