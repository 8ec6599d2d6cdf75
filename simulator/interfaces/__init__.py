"""The bundled Edgehog interface definitions (JSON, Apache-2.0, see LICENSE here) and their loader."""
