"""Labs: lifecycle, checks, and running the learner's code."""
