"""Other ComfyUI servers as executors (a second GPU, a machine on the LAN, a rented pod): the
named servers (`servers`) and the adapter that queues and follows prompts on them
(`executor`). The remote is a stock ComfyUI: it needs no package."""
