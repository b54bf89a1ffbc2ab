"""Development tools that may import every service: the settings reference generator."""
