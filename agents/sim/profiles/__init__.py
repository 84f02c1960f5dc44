"""Device profiles describing the simulators' register maps, loadable by the agent as they are."""
