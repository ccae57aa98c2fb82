"""Framework integrations. Each imports its framework only inside itself; a missing
framework raises ImportError naming the pip extra to install."""
