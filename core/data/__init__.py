"""Layer 2, data: prompts and prompt sets, prompt files and atomic writes, teacher-forced batches, the bundled
files' paths and the held-out samples the explorer judges on. It may import core.model only."""
