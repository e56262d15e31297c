"""What an architecture is: spec, encodings, search spaces, builder, export."""
