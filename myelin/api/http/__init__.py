"""The HTTP edge shared by every API: routing, auth, errors, CORS, rate limits, metrics."""
