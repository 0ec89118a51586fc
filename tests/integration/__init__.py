"""The service and the trainer end to end in process: the API over ASGI, the command
lines, training runs, Spark in local mode; against real Redis servers."""
