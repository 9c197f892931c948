"""Tests of gtalign.protocol (a package, so test module names may repeat across test folders)."""
