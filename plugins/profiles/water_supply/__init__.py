"""Device profile templates of the water supply field, one YAML file each."""
