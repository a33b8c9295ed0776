"""``r3hf explain`` and ``r3hf score``: the service's credit from a terminal, against a server URL or in-process."""
