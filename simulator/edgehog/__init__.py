"""A real Edgehog as the campaign driver: target-file section, GraphQL documents and client, the driver."""
