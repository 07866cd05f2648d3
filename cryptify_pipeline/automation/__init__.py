"""Jobs, schedules, sensors, run config, run tags, failure records and executors."""
