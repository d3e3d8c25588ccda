"""Typed models at every boundary: the fleet spec and each state's input and output."""
