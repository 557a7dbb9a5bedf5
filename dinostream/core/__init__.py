"""The core every layer stands on: the wire records and their conversions, settings, errors and
Kafka I/O. It imports nothing of dinostream outside itself."""
