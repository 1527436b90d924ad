"""lm-eval task YAMLs the harness renders at run time; utils.py holds their shared filters."""
