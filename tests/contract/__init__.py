"""The trainer-service contract on every backend: what the trainer publishes the service
reads, on a single node and on a 3-master Redis Cluster."""
