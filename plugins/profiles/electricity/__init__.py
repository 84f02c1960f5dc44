"""Device profile templates of the electricity field, one YAML file each."""
