"""Hostile clients of `codexbro app-server` (a red-team round on issue 18): each test was a failing
reproducer before its fix — lines that killed the server, lone surrogates that wedged a thread, an
override that silently dropped the approval policy, partial thread ids, pipelined turns, over-long
lines, a second live session of a thread, command/exec outliving its client, approvals left open
by an interrupt, non-image local images, replies outside upstream's schema, and the WebSocket
handshake's edge cases."""
