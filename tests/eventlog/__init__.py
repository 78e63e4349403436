"""Tests of the generic log layer (``eventlog``) alone."""
