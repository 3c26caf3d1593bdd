"""Examples that run beside qms; nothing in qms imports them."""
