"""Pedestrian crowds for NavBench-GS: social-force motion and Gaussian bodies."""
