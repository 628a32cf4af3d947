"""Federation (server-server) API endpoints."""
