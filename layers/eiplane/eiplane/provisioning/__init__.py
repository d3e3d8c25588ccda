"""The launch and validation stage: slots, instances, the agent over SSM, the lifecycle."""
