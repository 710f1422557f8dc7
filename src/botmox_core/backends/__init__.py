"""Built-in backends, registered through the plugin manager like any third-party plugin:
``sqlite`` (repository), ``localfs`` (object storage) and ``inprocess`` (agent transport)."""
