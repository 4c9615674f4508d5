"""The `gradwise` command line."""
