"""Device profile templates of the public lighting field, one YAML file each."""
