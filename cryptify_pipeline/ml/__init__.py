"""Framework-free pandas / scikit-learn code: features, targets, models, metrics."""
