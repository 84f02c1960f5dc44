"""The city's sixteen smart fields, one module each, registered through the
``smartcity.fields`` entry-point group exactly as a third party's plugin would be."""
