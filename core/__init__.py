"""SafeSeek core: models, data, masks, discovery, ablation, evaluation, tuning and circuit files."""
