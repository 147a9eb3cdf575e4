"""SIP-AT: Salient Information Preserving Adversarial Training, as a library (torch + numpy only)."""
