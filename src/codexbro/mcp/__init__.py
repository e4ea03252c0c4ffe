"""MCP: the client of the user's MCP servers (``[mcp_servers.NAME]``), their tools on the menu, the
ChatGPT connectors gateway, and codexbro as an MCP server. The ``mcp`` SDK is imported only by the
modules that talk to a server, never at start-up."""
