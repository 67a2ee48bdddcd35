"""Running builds: the per-task pipeline and the job description it sends to the builder."""
