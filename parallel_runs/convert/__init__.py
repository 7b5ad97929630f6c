"""UI-format workflows (what the editor saves) to API prompts (what `POST /prompt` takes), in
pure Python from `/object_info`: `to_prompt` drives it; `graph` (nodes, links, reroutes),
`subgraph_ids` and `resolve` (subgraphs flattened), `widgets` (widget values to inputs) and
`text` (the frontend's text rewrites) do the parts; `prompt_format` tells the two formats
apart."""

from .to_prompt import ConversionError, workflow_to_prompt

__all__ = ["ConversionError", "workflow_to_prompt"]
