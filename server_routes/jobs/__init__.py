"""`GET /parallel/jobs`: every prompt the server knows, local and remote, for a page that
rebuilds its per-prompt view (`routes`)."""
