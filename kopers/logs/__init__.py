"""Build logs: the live hub that fans lines out to viewers and files."""
