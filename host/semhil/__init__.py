"""semhil: hardware-in-the-loop harness for error-resilient semantic offloading."""
