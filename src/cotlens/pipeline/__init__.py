"""Running the pipeline: the CLI, the stage plumbing, config checks, code dependencies, the plan, the report."""
