"""HTTP edges: parse, call one service, respond. No business logic lives here."""
