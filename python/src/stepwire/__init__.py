"""stepwire: run one step of an ML pipeline anywhere from one command line."""
