"""Tools beside the framework: the golden vectors' generator and the stress tools."""
