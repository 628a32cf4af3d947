"""The server-server side of the homeserver: other servers' keys, and talking to them."""
