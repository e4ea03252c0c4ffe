"""``codexbro app-server``: upstream Codex's app-server protocol (JSON-RPC over stdio or a loopback
WebSocket) as a front end over the core's Op/Event protocol. See docs/app-server.md."""
