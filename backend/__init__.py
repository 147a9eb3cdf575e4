"""SIP-AT study platform web service (FastAPI); never imports torch or sipat."""
