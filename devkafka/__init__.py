"""Development-only Apache Kafka: the local brokers of `make run`, `convoy-stream kafka` and the tests.

`embedded_kafka` runs one KRaft broker from jars fetched once with Maven (`pom.xml`),
`embedded_cluster` a multi-node cluster of them, `cluster_cli` the `convoy-stream kafka
--nodes N` command. Nothing here runs in production: the worker (`convoy_stream`) never imports
this package, except its `dev` and `kafka` commands, which start a broker
(`tests/unit/test_import_contracts.py`), and the worker image leaves it out.
"""
