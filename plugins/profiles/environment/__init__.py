"""Device profile templates of the environment field, one YAML file each."""
