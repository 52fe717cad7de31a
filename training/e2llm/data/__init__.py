"""Training data for E2LLM: offline text sources (``corpus``) and sample generators (``tasks``)."""
